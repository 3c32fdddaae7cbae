# SPDX-License-Identifier: BSD-3-Clause
"""Python MCL's module layout: mcl.network.udp.Connection (compatibility)."""

// SPDX-License-Identifier: BSD-3-Clause
/**
 * @file mcl/mcl.h
 * Umbrella header: everything public in mcl.
 */
#ifndef MCL_MCL_H
#define MCL_MCL_H

#include <mcl/broker.h>
#include <mcl/connection.h>
#include <mcl/err.h>
#include <mcl/log.h>
#include <mcl/logfile.h>
#include <mcl/logger.h>
#include <mcl/logstream.h>
#include <mcl/message.h>
#include <mcl/pstream.h>
#include <mcl/queued.h>
#include <mcl/raw.h>
#include <mcl/reactor.h>
#include <mcl/rpc.h>
#include <mcl/stream.h>
#include <mcl/value.h>
#include <mcl/version.h>

#endif

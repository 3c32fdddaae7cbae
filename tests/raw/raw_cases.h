// SPDX-License-Identifier: BSD-3-Clause
// Raw broadcaster/listener cases that hold for every transport that fragments and fans out
// (udp://, inproc://): each suite (test_raw_udp.c, test_raw_inproc.c) provides its URLs and
// lists these cases next to its own.
#ifndef RAWT_CASES_H
#define RAWT_CASES_H

#include "harness.h"

#include <stddef.h>

// Provided by the suite: a fresh endpoint per call, so that tests never hear each other;
// extra ("&key=value...") holds generic options only.
void rawt_make_url(char *buf, size_t len, const char *extra);
// Provided by the suite: options for a receiver that must absorb a burst ("" if none needed).
extern const char *const rawt_bigbuf;

// Opens a listener on url and a broadcaster on the listener's effective URL.
void rawt_pair(const char *url, const char *const *topics, size_t ntopics, mcl_raw_listener **l,
               mcl_raw_broadcaster **b, const char *btopic);

void rawt_mcl_one_topic_of_five(void);
void rawt_mcl_three_topics_in_order(void);
void rawt_prefix_filter(void);
void rawt_large_payloads_intact(void);
void rawt_close_semantics_and_errors(void);
void rawt_two_publishers_interleaving_large_messages(void);
void rawt_shared_broadcaster_sends_in_sequence_order(void);
void rawt_listener_thread_callbacks(void);
void rawt_fd_and_dispatch(void);
void rawt_many_listeners_one_group(void);
void rawt_batching(void);
void rawt_compressed(void);
void rawt_rate_paces_fragments(void);
void rawt_msgrate_paces_messages(void);
void rawt_unpaced_never_waits(void);

#define RAWT_CASES                                                                                 \
    {"mcl_one_topic_of_five", rawt_mcl_one_topic_of_five},                                         \
        {"mcl_three_topics_in_order", rawt_mcl_three_topics_in_order},                             \
        {"prefix_filter", rawt_prefix_filter},                                                     \
        {"large_payloads_intact", rawt_large_payloads_intact},                                     \
        {"close_semantics_and_errors", rawt_close_semantics_and_errors},                           \
        {"two_publishers_interleaving_large_messages",                                             \
         rawt_two_publishers_interleaving_large_messages},                                         \
        {"shared_broadcaster_sends_in_sequence_order",                                             \
         rawt_shared_broadcaster_sends_in_sequence_order},                                         \
        {"listener_thread_callbacks", rawt_listener_thread_callbacks},                             \
        {"fd_and_dispatch", rawt_fd_and_dispatch},                                                 \
        {"many_listeners_one_group", rawt_many_listeners_one_group}, {"batching", rawt_batching}, \
        {"rate_paces_fragments", rawt_rate_paces_fragments},                                       \
        {"msgrate_paces_messages", rawt_msgrate_paces_messages},                                   \
        {"unpaced_never_waits", rawt_unpaced_never_waits}, {"compressed", rawt_compressed}

#endif

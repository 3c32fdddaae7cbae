// Socket set-up for UDP multicast: the only code that touches multicast socket options.
#ifndef MCL_NET_H
#define MCL_NET_H

#include "../connection_int.h"

// Opens a connected sending socket for conn. On failure *fdp is -1 and the log says why.
mcl_err mcl__udp_open_send(const struct mcl_connection *conn, int *fdp);

// Opens a bound, joined, non-blocking receiving socket for conn. *port receives the bound port
// and *rcvbuf the effective receive buffer size.
mcl_err mcl__udp_open_recv(const struct mcl_connection *conn, int *fdp, uint16_t *port,
                           size_t *rcvbuf);

// Test seam for broadcasters: the n-th sendmmsg call from now on (0 = the next one) fails once
// with errno e, as if the kernel had refused it; n < 0 disables.
void mcl__send_fail_after(long n, int e);
// True (with *e set) when the seam says this send fails.
bool mcl__send_should_fail(int *e);

#endif

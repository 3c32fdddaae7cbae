// The layout of mcl_connection, visible to the library only.
#ifndef MCL_CONNECTION_INT_H
#define MCL_CONNECTION_INT_H

#include <mcl/connection.h>

#include <netinet/in.h>
#include <sys/socket.h>

#define MCL__URL_MAX 640
#define MCL__IFACE_MAX 64
// Large enough that a receiver absorbs a burst of ~60 messages of 1 MiB sent at loopback
// speed (measured: bench/throughput.c); unprivileged processes are capped at rmem_max.
#define MCL__DEF_RCVBUF ((size_t)64 << 20)

struct mcl_connection {
    int family;                   // 4 or 6
    char group[INET6_ADDRSTRLEN]; // text, no brackets
    struct in_addr group4;
    struct in6_addr group6;
    uint16_t port;
    int ttl;
    bool loop;
    char iface[MCL__IFACE_MAX]; // "" = routing table
    size_t rcvbuf;
    size_t sndbuf;
    size_t maxmsg;
    size_t dgram;
    uint32_t expire_ms;
    uint32_t batch_us; // broadcasters: pack small messages for up to this long (0: off)
    size_t partmem;
    char url[MCL__URL_MAX]; // canonical
};

// Rebuilds conn->url from the fields (used after a listener learns its bound port).
void mcl__connection_canon(struct mcl_connection *conn);

#endif

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

enum { MCL__TP_UDP = 0, MCL__TP_ZMQ = 1 };
enum { MCL__ZMQ_TCP = 1, MCL__ZMQ_IPC = 2, MCL__ZMQ_INPROC = 3 };
enum { MCL__ZMODE_DEFAULT = 0, MCL__ZMODE_BIND = 1, MCL__ZMODE_CONNECT = 2 };
#define MCL__ZADDR_MAX 256
#define MCL__KEYPATH_MAX 256

struct mcl_connection {
    int transport;                // MCL__TP_UDP or MCL__TP_ZMQ
    // ZeroMQ (transport MCL__TP_ZMQ): the endpoint and its socket options.
    int zkind;                    // MCL__ZMQ_TCP, _IPC, _INPROC
    char zaddr[MCL__ZADDR_MAX];   // tcp: host (no brackets) or "*"; ipc: path; inproc: name
    int zmode;                    // MCL__ZMODE_*: default = broadcasters bind, listeners connect
    int hwm;                      // high-water mark in messages (0: libzmq's default, 1000)
    bool zdrop;                   // drop for slow subscribers instead of blocking (lossless)
    int ztimeout_ms;              // lossless publish: give up after this long (-1: never)
    int linger_ms;                // what close waits for unsent messages
    char curve_key[MCL__KEYPATH_MAX];    // our key pair file (mcl-keygen), "" = none
    char curve_server[MCL__KEYPATH_MAX]; // the server's public key: hex text or a file
    char curve_clients[MCL__KEYPATH_MAX]; // server: file of the client keys allowed, "" = any
    int family;                   // 4 or 6 (udp); 0 for zmq
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

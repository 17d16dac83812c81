/*
 * head: builds the request head a proxied request goes out with, and
 * answers the questions about it the response side asks.
 */
#ifndef PORTICO_HEAD_H
#define PORTICO_HEAD_H

#include "proxy/proxy-t.h"

struct conf_ctx;
struct conf_kv;
struct conf_route;

/* Parses "ADDRESS[/BITS]" (IPv4 or IPv6) into c.  0 or -1. */
int head_parse_cidr(const char *s, struct cidr *c);
/* Parses one of the route's upgrade lines, k, into pc, adding to the list
 * of the lines before (errors reported with its line).  0 or -1. */
int head_configure_upgrade(struct conf_ctx *ctx, struct proxy_conf *pc, const struct conf_route *rt,
    const struct conf_kv *k);
/* Writes pr's request head for the server pr->u is connected to into pr->head. */
void head_build(struct proxy_req *pr);
/* Whether a Connection field among hs[0..n) names h (RFC 9110 7.6.1). */
int head_named_in_connection(const struct http_header *hs, unsigned n, const struct http_header *h);
/* How many of the client's Upgrade protocols the route passes on; appended to
 * b as one list unless b is NULL.  0: the request goes on as a plain one. */
unsigned head_upgrade_offer(const struct proxy_conf *pc, const struct http_request *hr, struct sbuf *b);
/* Whether a server's 101 names a protocol that was offered to it. */
int head_upgrade_answer_ok(const struct proxy_conf *pc, const struct http_request *hr,
    const struct http_response *rs);
/* Max-Forwards of a TRACE or OPTIONS, or -1 (absent, invalid, other methods). */
long head_max_forwards(const struct http_request *hr);

#endif

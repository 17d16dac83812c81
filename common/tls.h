/*
 * tls: HTTPS listeners with OpenSSL.  A listener with tls_cert/tls_key
 * pairs gets one SSL_CTX per pair; the client's SNI picks the pair whose
 * certificate names it (exact or wildcard, from the certificate's own SAN
 * and CN), else the first.  TLS 1.2 and 1.3 only by default, ALPN
 * http/1.1, and a peer that closes without close_notify is an ordinary
 * end of stream.  The contexts are shared by all workers (OpenSSL locks
 * what it shares, such as the session cache and ticket keys).
 */
#ifndef PORTICO_TLS_H
#define PORTICO_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct conf_ctx;
struct config;
struct conf_listen;
struct ssl_st;

struct tls_listener;

/*
 * Builds the TLS state of a listener from its keys, reporting problems
 * (unreadable files, a key not matching its certificate, bad versions or
 * cipher lists) with conf_err, at the line line_of(arg, key) gives for a
 * single-valued key (0: the section's line).  Sessions last session_ms.
 * Returns NULL after an error.
 */
struct tls_listener *tls_listener_new(struct conf_ctx *ctx, const struct conf_listen *l,
    const char *section, int64_t session_ms, int (*line_of)(const void *arg, const char *key),
    const void *arg);
void tls_listener_free(struct tls_listener *t);
/* Whether the client and we agreed on h2 by ALPN. */
struct ssl_st;
int tls_alpn_h2(const struct ssl_st *ssl);
/* A new server-side SSL for fd, or NULL. */
struct ssl_st *tls_accept(struct tls_listener *t, int fd);
/*
 * The client certificate of a finished handshake, when one was presented
 * and verified: its SHA-256 fingerprint (64 hex digits and a NUL; flen >=
 * 65) goes into fp, and its subject (RFC 2253, control bytes as '?') into
 * subject with a NUL when the whole of it fits in slen bytes.  Returns the
 * subject's length, which is slen or more when it did not fit (subject is
 * then untouched: a subject is never cut), or -1 when there is no verified
 * certificate (or no memory to print its subject).
 */
ssize_t tls_client_cert(struct ssl_st *ssl, char *subject, size_t slen, char *fp, size_t flen);
/*
 * Session tickets: one set of keys for the whole process, so a ticket from
 * any worker resumes on any other.  tls_tickets_start makes a random key
 * (or reads the 80-byte file, shared by several edges: 16 bytes name, 32
 * HMAC, 32 AES); tls_tickets_rotate (main thread, every tls_ticket_rotate)
 * makes a new key and keeps the last one for decryption, so tickets stay
 * good for two periods.  0 or -1.
 */
int tls_tickets_start(const char *keyfile);
void tls_tickets_rotate(void);
void tls_tickets_stop(void);
/* Checks a ticket key file (80 bytes, readable).  0, or -1 with why. */
int tls_ticket_key_check(const char *path, char *why, size_t len);
/*
 * Reads from fd, through ssl when it is not NULL: bytes, 0 at the end of
 * the stream, or -1 with errno (EAGAIN when the socket must become
 * readable or writable first).  Shared by client and server connections.
 */
ssize_t tls_io_recv(int fd, struct ssl_st *ssl, void *buf, size_t len);
/* Writes to fd, through ssl when it is not NULL, as tls_io_recv (a write
 * never returns 0); more asks for MSG_MORE on a plain socket. */
ssize_t tls_io_send(int fd, struct ssl_st *ssl, const void *buf, size_t len, int more);
/* Version strings for -V. */
const char *tls_version(void);

#endif

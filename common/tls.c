#include "common/tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/config.h"
#include "common/log.h"
#include "common/seqlock.h"

#define TLS_MAX_NAMES 64

struct tls_cert {
	SSL_CTX *ctx;
	char *names[TLS_MAX_NAMES];   /* lower case; "*.example.com" for wildcards */
	unsigned nnames;
};

struct tls_listener {
	struct tls_cert *certs;
	size_t n;
};

struct ticket_key {
	unsigned char name[16];
	unsigned char hmac[32];
	unsigned char aes[32];
};

/* The keys in use: the current one first, then the previous one. */
struct ticket_ring {
	struct ticket_key key[2];
	int nkeys;
};

#define RING_WORDS ((sizeof(struct ticket_ring) + 7) / 8)

/*
 * Process-wide TLS state.  The ticket keys are under a sequence lock
 * (common/seqlock.h): the main thread writes a new ring on rotation, and a
 * handshake in a worker copies the ring out.  No worker ever holds a
 * pointer into it, so nothing waits to be freed: before, a ring was freed
 * two rotations after it was replaced, on the hope that no handshake still
 * used it, and tls_ticket_rotate may be as short as a millisecond.
 */
static struct {
	_Atomic unsigned ring_gen;         /* 0: no keys (not started, or stopped) */
	_Atomic uint64_t ring[RING_WORDS];
	int fixed;                         /* keys from a file: no rotation */
} tls_proc;

int
tls_ticket_key_check(const char *path, char *why, size_t len)
{
	unsigned char buf[81];
	FILE *fp = fopen(path, "rb");

	if (fp == NULL) {
		snprintf(why, len, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	size_t n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	if (n != 80) {
		snprintf(why, len, "%s must hold exactly 80 bytes (openssl rand 80 > FILE)", path);
		return -1;
	}
	return 0;
}

/* Copies the keys in use into *r.  0, or -1 when there are none. */
static int
ring_get(struct ticket_ring *r)
{
	uint64_t w[RING_WORDS];

	if (seqlock_read(&tls_proc.ring_gen, tls_proc.ring, w, RING_WORDS) == 0)
		return -1;
	memcpy(r, w, sizeof(*r));
	OPENSSL_cleanse(w, sizeof(w));
	return 0;
}

/* Puts *r in use (the main thread, or start-up). */
static void
ring_set(const struct ticket_ring *r)
{
	uint64_t w[RING_WORDS] = { 0 };

	memcpy(w, r, sizeof(*r));
	seqlock_write(&tls_proc.ring_gen, tls_proc.ring, w, RING_WORDS);
	OPENSSL_cleanse(w, sizeof(w));
}

static int
ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
    EVP_MAC_CTX *hctx, int enc)
{
	struct ticket_ring ring;
	const struct ticket_key *k = NULL;
	int found = 0, rc;

	(void)s;
	if (ring_get(&ring) < 0)
		return enc ? -1 : 0;
	if (enc) {
		k = &ring.key[0];
		memcpy(key_name, k->name, 16);
		if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1) {
			rc = -1;
			goto out;
		}
	} else {
		for (int i = 0; i < ring.nkeys; i++)
			if (memcmp(key_name, ring.key[i].name, 16) == 0) {
				k = &ring.key[i];
				found = i;
				break;
			}
		if (k == NULL) {
			rc = 0; /* unknown key: a full handshake */
			goto out;
		}
	}
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"sha256", 0),
		OSSL_PARAM_construct_end(),
	};
	if (EVP_MAC_CTX_set_params(hctx, params) != 1)
		rc = -1;
	else if (enc)
		rc = EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1 ? 1 : -1;
	else if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1)
		rc = -1;
	else
		rc = found == 0 ? 1 : 2; /* 2: good, but issue a ticket under the new key */
out:
	OPENSSL_cleanse(&ring, sizeof(ring));
	return rc;
}

static int
new_key(struct ticket_key *k)
{
	return RAND_bytes((unsigned char *)k, sizeof(*k)) == 1 ? 0 : -1;
}

int
tls_tickets_start(const char *keyfile)
{
	struct ticket_ring r = { .nkeys = 1 };
	int rc = 0;

	if (keyfile != NULL) {
		unsigned char buf[80];
		FILE *fp = fopen(keyfile, "rb");
		size_t n = fp != NULL ? fread(buf, 1, sizeof(buf), fp) : 0;
		if (fp != NULL)
			fclose(fp);
		if (n != sizeof(buf))
			return -1;
		memcpy(r.key[0].name, buf, 16);
		memcpy(r.key[0].hmac, buf + 16, 32);
		memcpy(r.key[0].aes, buf + 48, 32);
		OPENSSL_cleanse(buf, sizeof(buf));
		tls_proc.fixed = 1;
	} else if (new_key(&r.key[0]) < 0) {
		rc = -1;
	}
	if (rc == 0)
		ring_set(&r);
	OPENSSL_cleanse(&r, sizeof(r));
	return rc;
}

void
tls_tickets_rotate(void)
{
	struct ticket_ring old, r = { .nkeys = 2 };

	if (tls_proc.fixed || ring_get(&old) < 0)
		return;
	if (new_key(&r.key[0]) == 0) {
		r.key[1] = old.key[0];
		ring_set(&r);
		log_info("TLS session ticket key rotated");
	}
	OPENSSL_cleanse(&old, sizeof(old));
	OPENSSL_cleanse(&r, sizeof(r));
}

void
tls_tickets_stop(void)
{
	/* The workers have ended: no reader is left. */
	atomic_store(&tls_proc.ring_gen, 0);
	for (size_t i = 0; i < RING_WORDS; i++)
		atomic_store(&tls_proc.ring[i], 0);
}

const char *
tls_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION);
}

static const char *
ssl_error(void)
{
	static _Thread_local char buf[256];
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		return "unknown error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

static void
add_name(struct tls_cert *c, const char *name, size_t len)
{
	if (c->nnames == TLS_MAX_NAMES || len == 0 || len > 253)
		return;
	char *s = strndup(name, len);
	if (s == NULL)
		return;
	for (char *p = s; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p += 32;
	c->names[c->nnames++] = s;
}

/* The DNS names a certificate is for: its SAN entries, or its CN without any. */
static void
cert_names(struct tls_cert *c, X509 *x)
{
	GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);

	for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
		if (g->type == GEN_DNS)
			add_name(c, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
			    (size_t)ASN1_STRING_length(g->d.dNSName));
	}
	if (sans != NULL)
		GENERAL_NAMES_free(sans);
	if (c->nnames == 0) {
		char cn[256];
		int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
		if (n > 0)
			add_name(c, cn, (size_t)n);
	}
}

static int
name_matches(const char *pat, const char *host)
{
	if (pat[0] == '*' && pat[1] == '.') {
		/* A wildcard covers one label: *.example.com is a.example.com, not a.b.example.com. */
		const char *dot = strchr(host, '.');
		return dot != NULL && dot != host && strcasecmp(dot, pat + 1) == 0;
	}
	return strcasecmp(pat, host) == 0;
}

static int
on_servername(SSL *ssl, int *alert, void *arg)
{
	struct tls_listener *t = arg;
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	(void)alert;
	if (host == NULL)
		return SSL_TLSEXT_ERR_OK; /* no SNI: the first (default) pair */
	/* Exact names first, then wildcards. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < t->n; i++)
			for (unsigned k = 0; k < t->certs[i].nnames; k++) {
				const char *pat = t->certs[i].names[k];
				if ((pass == 0) != (pat[0] != '*'))
					continue;
				if (name_matches(pat, host)) {
					if (t->certs[i].ctx != SSL_get_SSL_CTX(ssl))
						SSL_set_SSL_CTX(ssl, t->certs[i].ctx);
					return SSL_TLSEXT_ERR_OK;
				}
			}
	return SSL_TLSEXT_ERR_OK;
}

/* The protocols a listener offers by ALPN, in its order of preference:
 * h2 first where it is on, HTTP/1.1, and HTTP/1.0 for a client that
 * offers only that (the request line says which anyway). */
struct alpn_list {
	const unsigned char *wire;
	unsigned len;
};

static const unsigned char alpn_h2[] = "\x02h2\x08http/1.1\x08http/1.0";
static const unsigned char alpn_h1[] = "\x08http/1.1\x08http/1.0";
static const struct alpn_list alpn_with_h2 = { alpn_h2, sizeof(alpn_h2) - 1 };
static const struct alpn_list alpn_without_h2 = { alpn_h1, sizeof(alpn_h1) - 1 };

/*
 * RFC 9113 9.2.2 and appendix A: over TLS 1.2, HTTP/2 only with an
 * ephemeral key exchange and an AEAD cipher, or the client may end it
 * with INADEQUATE_SECURITY.  The suite is chosen before ALPN (OpenSSL
 * calls this after negotiating it), so a suite h2 may not use gets
 * HTTP/1.1 instead: only a tls_ciphers wider than the default has one.
 */
static int
h2_suite_ok(const SSL *ssl)
{
	const SSL_CIPHER *c;
	int kx;

	if (SSL_version(ssl) >= TLS1_3_VERSION)
		return 1;
	if ((c = SSL_get_pending_cipher(ssl)) == NULL)
		return 0;
	kx = SSL_CIPHER_get_kx_nid(c);
	return SSL_CIPHER_is_aead(c) && (kx == NID_kx_ecdhe || kx == NID_kx_dhe);
}

static int
on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
    unsigned int inlen, void *arg)
{
	const struct alpn_list *ours = arg;
	unsigned char *sel;

	if (ours == &alpn_with_h2 && !h2_suite_ok(ssl))
		ours = &alpn_without_h2;
	if (SSL_select_next_proto(&sel, outlen, ours->wire, ours->len, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL; /* no protocol of ours offered: RFC 7301 */
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

int
tls_alpn_h2(const struct ssl_st *ssl)
{
	const unsigned char *p;
	unsigned len;

	SSL_get0_alpn_selected(ssl, &p, &len);
	return len == 2 && p[0] == 'h' && p[1] == '2';
}

static int
parse_version(const char *s)
{
	if (strcmp(s, "TLSv1.2") == 0 || strcmp(s, "1.2") == 0)
		return TLS1_2_VERSION;
	if (strcmp(s, "TLSv1.3") == 0 || strcmp(s, "1.3") == 0)
		return TLS1_3_VERSION;
	return -1;
}

/* Where a key was given: the list entry's line, the key's, or the section's. */
struct lines {
	const struct conf_listen *l;
	int (*line_of)(const void *, const char *);
	const void *arg;
	long session_timeout;         /* seconds */
};

static int
key_line(const struct lines *ln, const char *key)
{
	int line = ln->line_of != NULL ? ln->line_of(ln->arg, key) : 0;

	return line > 0 ? line : ln->l->line;
}

/* A readable file, or a message saying why not (OpenSSL's own says "system lib"). */
static int
readable(struct conf_ctx *cctx, int line, const char *sec, const char *key, const char *path)
{
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		conf_err(cctx, line, sec, key, "cannot read %s: %s", path, strerror(errno));
		return 0;
	}
	fclose(fp);
	return 1;
}

/*
 * The passphrase callback of every key read: encrypted keys are not
 * supported, so it never asks (OpenSSL's default would prompt on the
 * terminal) and fails, -1 rather than 0, which OpenSSL would try as an
 * empty passphrase.  u, when not NULL, counts the times it was asked.
 */
static int
refuse_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	if (u != NULL)
		(*(int *)u)++;
	return -1;
}

enum {
	PEM_CERT = 0x1,          /* CERTIFICATE, TRUSTED CERTIFICATE, X509 CERTIFICATE */
	PEM_KEY = 0x2,           /* any PRIVATE KEY block */
	PEM_ENCRYPTED = 0x4,     /* ENCRYPTED PRIVATE KEY, or "Proc-Type: 4,ENCRYPTED" */
};

static int
label_ends(const char *label, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(label + len - n, suffix, n) == 0;
}

/*
 * The kinds of PEM block path holds (PEM_* bits; 0 when none, or when it
 * cannot be read), from their BEGIN lines: enough to say why OpenSSL
 * refused a file, which its errors ("PEM lib", "DECODER routines::
 * unsupported") do not.
 */
static int
pem_kinds(const char *path)
{
	char line[128];
	int kinds = 0, bol = 1;
	FILE *fp = fopen(path, "r");

	if (fp == NULL)
		return 0;
	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t n = strlen(line);
		int at_start = bol;
		const char *label = line + 11, *end;
		bol = n > 0 && line[n - 1] == '\n';
		if (!at_start)
			continue; /* the rest of a line longer than the buffer */
		if (strncmp(line, "Proc-Type: 4,ENCRYPTED", 22) == 0)
			kinds |= PEM_ENCRYPTED;
		if (strncmp(line, "-----BEGIN ", 11) != 0 || (end = strstr(label, "-----")) == NULL)
			continue;
		size_t len = (size_t)(end - label);
		if (label_ends(label, len, "CERTIFICATE"))
			kinds |= PEM_CERT;
		else if (label_ends(label, len, "PRIVATE KEY"))
			kinds |= PEM_KEY | (len == 21 && memcmp(label, "ENCRYPTED", 9) == 0 ? PEM_ENCRYPTED : 0);
	}
	fclose(fp);
	return kinds;
}

/* The earliest error OpenSSL queued, the cause rather than "PEM lib". */
static const char *
ssl_first_error(void)
{
	static _Thread_local char buf[256];
	unsigned long e = ERR_peek_error();

	if (e == 0)
		return "unknown error";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

/* Loads the certificate (and chain) file into ctx, or says what the file is instead. */
static int
use_cert(struct conf_ctx *cctx, SSL_CTX *ctx, int line, const char *sec, const char *cert)
{
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) == 1)
		return 0;
	int kinds = pem_kinds(cert);
	if ((kinds & PEM_CERT) == 0)
		conf_err(cctx, line, sec, "tls_cert", "%s: not a PEM certificate%s", cert,
		    kinds & PEM_KEY ? " (it holds a private key)" : "");
	else
		conf_err(cctx, line, sec, "tls_cert", "%s: %s", cert, ssl_first_error());
	ERR_clear_error();
	return -1;
}

/*
 * Loads the private key file into ctx, whose certificate it must match, or
 * says why not: encrypted, no key in it, or one OpenSSL cannot read.  The
 * key is read here rather than by SSL_CTX_use_PrivateKey_file, which would
 * say "PEM lib" for all of these, and "key values mismatch" or nothing for
 * a key of another certificate, depending on its type.
 */
static int
use_key(struct conf_ctx *cctx, SSL_CTX *ctx, int line, const char *sec, const char *key,
    const char *cert)
{
	EVP_PKEY *pk = NULL;
	int asked = 0, rc = -1;
	BIO *b;

	ERR_clear_error();
	if ((b = BIO_new_file(key, "r")) != NULL)
		pk = PEM_read_bio_PrivateKey(b, NULL, refuse_passphrase, &asked);
	BIO_free(b);
	if (pk == NULL) {
		int kinds = pem_kinds(key);
		if (asked > 0 || (kinds & PEM_ENCRYPTED))
			conf_err(cctx, line, sec, "tls_key",
			    "%s: encrypted keys are not supported; decrypt it with openssl pkey", key);
		else if ((kinds & PEM_KEY) == 0)
			conf_err(cctx, line, sec, "tls_key", "%s: not a PEM private key%s", key,
			    kinds & PEM_CERT ? " (it holds a certificate)" : "");
		else
			conf_err(cctx, line, sec, "tls_key", "%s: its private key cannot be read "
			    "(damaged, or of a type OpenSSL does not know)", key);
	} else if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), pk) != 1) {
		conf_err(cctx, line, sec, "tls_key", "%s does not match %s", key, cert);
	} else if (SSL_CTX_use_PrivateKey(ctx, pk) != 1) {
		conf_err(cctx, line, sec, "tls_key", "%s: %s", key, ssl_first_error());
	} else {
		rc = 0;
	}
	EVP_PKEY_free(pk);
	ERR_clear_error();
	return rc;
}

static SSL_CTX *
make_ctx(struct conf_ctx *cctx, const struct conf_listen *l, const char *sec, size_t i,
    struct tls_listener *t, const struct lines *ln)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *cert = l->tls_cert.v[i], *key = l->tls_key.v[i];
	int minv = parse_version(l->tls_min_version);
	int cline = l->tls_cert.lines != NULL ? l->tls_cert.lines[i] : l->line;
	int kline = l->tls_key.lines != NULL ? l->tls_key.lines[i] : l->line;

	if (ctx == NULL)
		return NULL;
	/* Whatever reads a key through ctx later (join_same_names) never prompts. */
	SSL_CTX_set_default_passwd_cb(ctx, refuse_passphrase);
	if (!readable(cctx, cline, sec, "tls_cert", cert) || !readable(cctx, kline, sec, "tls_key", key))
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, minv);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	    SSL_MODE_RELEASE_BUFFERS);
	/*
	 * Read ahead: one recv takes whatever the socket holds instead of a
	 * 5-byte record header and then its body (two syscalls per request).
	 * Bytes read ahead are not SSL_pending(); callers test SSL_has_pending().
	 */
	SSL_CTX_set_read_ahead(ctx, 1);
	/* Resumption: the server-side cache and tickets live in the context all workers share. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	/*
	 * Sessions resume only on the listener (and client-certificate rules)
	 * they were made under: OpenSSL refuses a session, ticket or cached,
	 * whose context differs.
	 */
	unsigned char sid[EVP_MAX_MD_SIZE];
	unsigned sidlen = 0;
	const char *sidparts[] = { "portico", l->name, l->tls_verify_client,
		l->tls_client_ca != NULL ? l->tls_client_ca : "" };
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int mdok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
	/* Each part with its terminating NUL, so no two lists hash alike. */
	for (size_t i = 0; mdok && i < sizeof(sidparts) / sizeof(sidparts[0]); i++)
		mdok = EVP_DigestUpdate(md, sidparts[i], strlen(sidparts[i]) + 1) == 1;
	mdok = mdok && EVP_DigestFinal_ex(md, sid, &sidlen) == 1;
	EVP_MD_CTX_free(md);
	if (!mdok || SSL_CTX_set_session_id_context(ctx, sid, sidlen) != 1) {
		conf_err(cctx, l->line, sec, NULL, "cannot set the session ID context: %s", ssl_error());
		goto fail;
	}
	/* One ticket per full handshake (OpenSSL sends two): less work, as good. */
	SSL_CTX_set_num_tickets(ctx, 1);
	/* A session lives as long as its ticket key can open it: two rotation
	 * periods (current key, then previous key). */
	if (ln->session_timeout > 0)
		SSL_CTX_set_timeout(ctx, 2 * ln->session_timeout);
	if (l->tls_ciphers != NULL && SSL_CTX_set_cipher_list(ctx, l->tls_ciphers) != 1) {
		conf_err(cctx, key_line(ln, "tls_ciphers"), sec, "tls_ciphers", "%s", ssl_error());
		goto fail;
	}
	if (l->tls_ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, l->tls_ciphersuites) != 1) {
		conf_err(cctx, key_line(ln, "tls_ciphersuites"), sec, "tls_ciphersuites", "%s", ssl_error());
		goto fail;
	}
	if (use_cert(cctx, ctx, cline, sec, cert) < 0 || use_key(cctx, ctx, kline, sec, key, cert) < 0)
		goto fail;
	if (strcmp(l->tls_verify_client, "off") != 0) {
		int line = key_line(ln, "tls_client_ca");
		STACK_OF(X509_NAME) *names;
		if (l->tls_client_ca == NULL) {
			conf_err(cctx, key_line(ln, "tls_verify_client"), sec, "tls_verify_client",
			    "needs tls_client_ca");
			goto fail;
		}
		if (!readable(cctx, line, sec, "tls_client_ca", l->tls_client_ca))
			goto fail;
		if (SSL_CTX_load_verify_locations(ctx, l->tls_client_ca, NULL) != 1 ||
		    (names = SSL_load_client_CA_file(l->tls_client_ca)) == NULL) {
			conf_err(cctx, line, sec, "tls_client_ca", "%s: %s", l->tls_client_ca, ssl_error());
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		/* on: a certificate is required; optional: checked when one is sent. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
		    (strcmp(l->tls_verify_client, "on") == 0 ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
		SSL_CTX_set_verify_depth(ctx, 8);
	}
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb);
	SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
	SSL_CTX_set_tlsext_servername_arg(ctx, t);
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn,
	    (void *)(l->http2 ? &alpn_with_h2 : &alpn_without_h2));
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static int
same_names(const struct tls_cert *a, const struct tls_cert *b)
{
	if (a->nnames != b->nnames)
		return 0;
	for (unsigned i = 0; i < a->nnames; i++)
		if (strcmp(a->names[i], b->names[i]) != 0)
			return 0;
	return 1;
}

/*
 * When an earlier pair names the same hosts with another key type, loads
 * this pair into that pair's context too (OpenSSL keeps one certificate
 * per key type there and picks by what the client supports) and drops c.
 * Returns 1 if it did.
 */
static int
join_same_names(struct tls_listener *t, struct tls_cert *c, const char *cert, const char *key)
{
	EVP_PKEY *k = SSL_CTX_get0_privatekey(c->ctx);

	for (size_t i = 0; i < t->n; i++) {
		EVP_PKEY *other = SSL_CTX_get0_privatekey(t->certs[i].ctx);
		if (!same_names(&t->certs[i], c) || k == NULL || other == NULL ||
		    EVP_PKEY_get_base_id(k) == EVP_PKEY_get_base_id(other))
			continue;
		if (SSL_CTX_use_certificate_chain_file(t->certs[i].ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(t->certs[i].ctx, key, SSL_FILETYPE_PEM) != 1) {
			ERR_clear_error();
			return 0; /* keep it as a pair of its own */
		}
		SSL_CTX_free(c->ctx);
		for (unsigned n = 0; n < c->nnames; n++)
			free(c->names[n]);
		memset(c, 0, sizeof(*c));
		return 1;
	}
	return 0;
}

struct tls_listener *
tls_listener_new(struct conf_ctx *cctx, const struct conf_listen *l, const char *sec,
    int64_t session_ms, int (*line_of)(const void *, const char *), const void *arg)
{
	struct tls_listener *t;
	struct lines ln = { l, line_of, arg, (long)(session_ms / 1000) };

	if (l->tls_cert.n != l->tls_key.n) {
		/* Point at the last of the longer list: that one has no partner. */
		const struct conf_strlist *longer = l->tls_cert.n > l->tls_key.n ? &l->tls_cert : &l->tls_key;
		int line = longer->lines != NULL ? longer->lines[longer->n - 1] : l->line;
		conf_err(cctx, line, sec, "tls_key", "%zu tls_cert but %zu tls_key: give them in pairs",
		    l->tls_cert.n, l->tls_key.n);
		return NULL;
	}
	if (strcmp(l->tls_verify_client, "off") != 0 && strcmp(l->tls_verify_client, "on") != 0 &&
	    strcmp(l->tls_verify_client, "optional") != 0) {
		conf_err(cctx, key_line(&ln, "tls_verify_client"), sec, "tls_verify_client",
		    "expected off, on or optional, not \"%s\"", l->tls_verify_client);
		return NULL;
	}
	if (parse_version(l->tls_min_version) < 0) {
		conf_err(cctx, key_line(&ln, "tls_min_version"), sec, "tls_min_version",
		    "expected TLSv1.2 or TLSv1.3, not \"%s\"",
		    l->tls_min_version);
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL || (t->certs = calloc(l->tls_cert.n, sizeof(*t->certs))) == NULL) {
		free(t);
		return NULL;
	}
	size_t good = 0;
	for (size_t i = 0; i < l->tls_cert.n; i++) {
		struct tls_cert *c = &t->certs[t->n];
		if ((c->ctx = make_ctx(cctx, l, sec, i, t, &ln)) == NULL)
			continue;
		good++;
		cert_names(c, SSL_CTX_get0_certificate(c->ctx));
		if (join_same_names(t, c, l->tls_cert.v[i], l->tls_key.v[i]))
			continue; /* an RSA and an ECDSA pair for the same names share one context */
		t->n++;
	}
	if (good != l->tls_cert.n) {
		tls_listener_free(t);
		return NULL;
	}
	return t;
}

void
tls_listener_free(struct tls_listener *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		SSL_CTX_free(t->certs[i].ctx);
		for (unsigned k = 0; k < t->certs[i].nnames; k++)
			free(t->certs[i].names[k]);
	}
	free(t->certs);
	free(t);
}

SSL *
tls_accept(struct tls_listener *t, int fd)
{
	SSL *ssl = SSL_new(t->certs[0].ctx);

	if (ssl == NULL)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

ssize_t
tls_client_cert(SSL *ssl, char *subject, size_t slen, char *fp, size_t flen)
{
	X509 *x = SSL_get0_peer_certificate(ssl);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char *text = NULL;
	long n = -1;

	if (x == NULL || SSL_get_verify_result(ssl) != X509_V_OK || flen < 65 || slen == 0)
		return -1;
	if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1) {
		ERR_clear_error();
		return -1;
	}
	for (unsigned i = 0; i < mdlen && 2 * i + 2 < flen; i++)
		snprintf(fp + 2 * i, 3, "%02x", md[i]);
	/* Printed whole into memory first: only its full length tells whether it fits. */
	BIO *b = BIO_new(BIO_s_mem());
	if (b != NULL && X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0)
		n = BIO_get_mem_data(b, &text);
	if (n >= 0 && (size_t)n < slen) {
		/* A subject is the CA's text, but it goes into a header: no control bytes. */
		for (long i = 0; i < n; i++)
			subject[i] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? '?' :
			    text[i];
		subject[n] = '\0';
	}
	BIO_free(b);
	ERR_clear_error();
	return n;
}

/* Maps what SSL_read or SSL_write returned (n <= 0) to the recv/send
 * contract. */
static ssize_t
io_result(SSL *ssl, int n, int fail_errno)
{
	switch (SSL_get_error(ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0; /* close_notify, or a plain close (SSL_OP_IGNORE_UNEXPECTED_EOF) */
	default:
		errno = fail_errno;
		return -1;
	}
}

ssize_t
tls_io_recv(int fd, SSL *ssl, void *buf, size_t len)
{
	if (ssl == NULL)
		return recv(fd, buf, len, 0);
	ERR_clear_error();
	int n = SSL_read(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	return n > 0 ? n : io_result(ssl, n, ECONNRESET);
}

ssize_t
tls_io_send(int fd, SSL *ssl, const void *buf, size_t len, int more)
{
	if (ssl == NULL)
		return send(fd, buf, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
	ERR_clear_error();
	int n = SSL_write(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (n > 0)
		return n;
	if (io_result(ssl, n, EPIPE) == 0)
		errno = EPIPE; /* a write never ends the stream */
	return -1;
}

/*
 * Unit tests for common/htpasswd.c and the Authorization decoder of
 * common/mw_basic.c: the file's syntax (comments, blanks, line ends),
 * every refused scheme with its line, the bounds, duplicates; checks
 * against hashes made once with Debian's htpasswd and mkpasswd (the
 * vectors below); and "Basic <base64>" decoding, strict.
 */
#include "common/htpasswd.h"
#include "common/mw_basic.h"
#include "t/unit/tap.h"

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Made with htpasswd -nbB, htpasswd -nb5 and mkpasswd -m ... */
#define H_ALICE "$2y$05$M1SwTMh1whk3Ey9rCUUQm.WR1FHiDvc3sCZ/13rUFKJIGRfmoxwES"  /* correct horse */
#define H_CAROL "$2y$04$ujGbadTHTz.o2FbsXmkjJeaQY4SSqn/XYh1vNXMcFjuPxrYpnBtSu"  /* pa:ss wörd */
#define H_2A "$2a$05$Qhu72h.UTTxW4vJ1bigXh.FwLxtSxGehjuE.DIZG6AnPx57gwD4hu"     /* abc */
#define H_2B "$2b$05$sv3vPbW.rOW744/DsY.33Od6u1cWWUTtxmE3sTJOcqT.xqW2IhMxy"     /* abc */
#define H_SHA512 "$6$HO.1hsBmvCrPSSDg$HQnE0L.ATG31n14YrY0Re5tDygaZub9PK4yj1NiBCQDQzEqZ7k5MgMcqE7F0Oed0OQh.k4t.zwSs6S1gdPehh." /* secret */
#define H_SHA256R "$5$rounds=2000$743hAj031yDtXTmo$mw/SRs9Nv/FF/u7Gj7Qy6qEjZ5r7DYsQ/ZgrUzKSW28" /* secret */
#define H_SHA512R "$6$rounds=10000$Nv4LqKN22jDMmtci$TIeD3vLLzMbu541JrOBuEqpNxSMhYMO0GaQP.8WuHl/AhjPBFohmZB5/CvdxiLHaLzS5tpZhZeWdYs1Bkv30K1" /* pw */
#define H_SHA256 "$5$m9vYlvVGi.2geDVV$sCAMcJ8XaSrrqUk3WEZb.KYsHZr2tQZKoDBe9uqwi/C" /* pw */
#define H_EMPTY "$6$rounds=1000$/JZQlSDDTu51J2J5$8p/zTwEpqHoHKx7V4Sa/fihip3UEeZ5xfPTFkojkBautZsLO8faeY0r2QH.reF/pgX2xJrPS5Gz.YUKFb9oVc/" /* "" */

/* What a parse reported: "LINE: message" lines. */
static char msgs[8192];
static int nmsgs;

static void
collect(void *arg, int line, const char *msg)
{
	(void)arg;
	snprintf(msgs + strlen(msgs), sizeof(msgs) - strlen(msgs), "%d: %s\n", line, msg);
	nmsgs++;
}

static const struct htpasswd_report rep = { collect, NULL };

static int
parse(const char *text, struct htpasswd *h)
{
	msgs[0] = '\0';
	nmsgs = 0;
	return htpasswd_parse(text, strlen(text), h, &rep);
}

/* A file of one bad line (after two good ones) gives exactly want. */
static void
refused(const char *line, const char *want, const char *what)
{
	struct htpasswd h;
	char text[2048], exp[1024];

	snprintf(text, sizeof(text), "# users\nalice:" H_ALICE "\n%s\ncarol:" H_CAROL "\n", line);
	snprintf(exp, sizeof(exp), "3: %s\n", want);
	is(parse(text, &h), -1, "%s: refused", what);
	is_str(msgs, exp, "%s: the message, with the line", what);
	ok(h.n == 0 && h.v == NULL, "%s: nothing kept", what);
}

static void
test_syntax(void)
{
	struct htpasswd h;
	const char *text =
	    "# a comment: with a colon\n"
	    "\n"
	    "   \t\n"
	    "  # an indented comment\n"
	    "zed:" H_SHA512 "\r\n"
	    "  alice:" H_ALICE "  \n"
	    "bob:" H_SHA256R "\t\n"
	    "carol:" H_CAROL "\n"
	    "d\xc3\xa9j\xc3\xa0:" H_2A "\n"
	    "eve:" H_2B "\n"
	    "frank:" H_SHA512R "\n"
	    "gus:" H_SHA256 "\n"
	    "empty:" H_EMPTY; /* no line end at the end */

	is(parse(text, &h), 0, "a file with comments, blanks, CRLF and blanks around lines");
	is_str(msgs, "", "... nothing reported");
	is(h.n, 9, "... nine users");
	int sorted = 1;
	for (size_t i = 1; i < h.n; i++)
		sorted &= strcmp(h.v[i - 1].name, h.v[i].name) < 0;
	ok(sorted, "... sorted by name");
	const struct htpasswd_user *u = htpasswd_find(&h, "alice", 5);
	ok(u != NULL && strcmp(u->hash, H_ALICE) == 0 && u->line == 6,
	    "find: alice, her hash without the blanks, line 6");
	u = htpasswd_find(&h, "zed", 3);
	ok(u != NULL && strcmp(u->hash, H_SHA512) == 0, "find: zed, the CR gone from the hash");
	u = htpasswd_find(&h, "d\xc3\xa9j\xc3\xa0", 6);
	ok(u != NULL && u->line == 9, "find: a UTF-8 name");
	u = htpasswd_find(&h, "empty", 5);
	ok(u != NULL && strcmp(u->hash, H_EMPTY) == 0, "find: the last line, without a line end");
	ok(htpasswd_find(&h, "alic", 4) == NULL && htpasswd_find(&h, "alicee", 6) == NULL &&
	    htpasswd_find(&h, "", 0) == NULL && htpasswd_find(&h, "Alice", 5) == NULL,
	    "find: prefixes, extensions, empty and other case are not users");
	ok(htpasswd_find(&h, "alice:x", 5) != NULL, "find: by length, not NUL");
	is_str(h.dummy, H_SHA512, "the dummy hash is the first line's (zed's)");
	htpasswd_free(&h);
	ok(h.v == NULL && h.n == 0, "free empties it");

	is(parse("# nobody\n\n", &h), -1, "a file of comments only: refused");
	is_str(msgs, "0: no users\n", "... \"no users\"");
	is(parse("", &h), -1, "an empty file: refused");
}

static void
test_refused(void)
{
	char line[1200];

	refused("bob:$apr1$l9dLEbOl$Ig4UBiAr811tPsdf37.Ww.",
	    "user \"bob\": MD5 ($apr1$) hashes are refused: make a bcrypt one with htpasswd -B",
	    "MD5 $apr1$");
	refused("bob:$1$VBgPO8wY$MOpd0bYuef75XNh/X2Ipd.",
	    "user \"bob\": MD5 crypt ($1$) hashes are refused: make a bcrypt one with htpasswd -B",
	    "MD5 crypt $1$");
	refused("bob:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=",
	    "user \"bob\": SHA-1 ({SHA}) hashes are refused: make a bcrypt one with htpasswd -B",
	    "SHA-1");
	refused("bob:kGok.5c1Mai3o",
	    "user \"bob\": DES crypt hashes are refused: make a bcrypt one with htpasswd -B",
	    "DES crypt");
	refused("bob:pw",
	    "user \"bob\": not a hash portico takes (a plain-text password?): make a bcrypt one "
	    "with htpasswd -B", "plain text");
	refused("bob:$y$j9T$LXOMV5GiKUnOdZikBvxK0/$YmXAiAb2hFSiijrTKDqe3Z2CGhJTUjP5KBP/GXdg5HA",
	    "user \"bob\": hash scheme $y$ is not one portico takes (bcrypt $2y$, SHA-256 crypt "
	    "$5$, SHA-512 crypt $6$): make a bcrypt one with htpasswd -B", "yescrypt");
	refused("bob:", "user \"bob\": no hash after the colon", "empty hash");
	refused("bob " H_ALICE, "expected user:hash, found no colon", "no colon");
	refused(":" H_ALICE, "the user name is empty", "empty user");
	refused("b\x01ob:" H_ALICE, "the user name has a control character", "control byte");
	memset(line, 'u', 256);
	snprintf(line + 256, sizeof(line) - 256, ":%s", H_ALICE);
	refused(line, "the user name is longer than 255 bytes", "a 256-byte user");
	memset(line, 'x', 1025);
	line[1025] = '\0';
	refused(line, "longer than 1024 bytes", "a 1025-byte line");
	refused("bob:" H_ALICE "x", "user \"bob\": not a well-formed bcrypt hash (60 characters: "
	    "$2y$, two digits of cost, $, 53 of salt and hash)", "bcrypt, one byte too many");
	refused("bob:$2y$05$M1SwTMh1whk3Ey9rCUUQm.WR1FHiDvc3sCZ/13rUFKJIGRfmoxw:S",
	    "user \"bob\": not a well-formed bcrypt hash (60 characters: "
	    "$2y$, two digits of cost, $, 53 of salt and hash)", "bcrypt with a colon");
	refused("bob:$2y$15$M1SwTMh1whk3Ey9rCUUQm.WR1FHiDvc3sCZ/13rUFKJIGRfmoxwES",
	    "user \"bob\": bcrypt cost 15 is outside 4 to 14 (above, each check would hold a "
	    "worker thread for a second or more)", "bcrypt cost 15");
	refused("bob:$2y$03$M1SwTMh1whk3Ey9rCUUQm.WR1FHiDvc3sCZ/13rUFKJIGRfmoxwES",
	    "user \"bob\": bcrypt cost 3 is outside 4 to 14 (above, each check would hold a "
	    "worker thread for a second or more)", "bcrypt cost 3");
	refused("bob:$2x$05$M1SwTMh1whk3Ey9rCUUQm.WR1FHiDvc3sCZ/13rUFKJIGRfmoxwES",
	    "user \"bob\": hash scheme $2x$ is not one portico takes (bcrypt $2y$, SHA-256 crypt "
	    "$5$, SHA-512 crypt $6$): make a bcrypt one with htpasswd -B", "bcrypt $2x$");
	refused("bob:$6$rounds=1000001$abc$" "8p/zTwEpqHoHKx7V4Sa/fihip3UEeZ5xfPTFkojkBautZsLO8faeY0r2QH.reF/pgX2xJrPS5Gz.YUKFb9oVc/",
	    "user \"bob\": SHA-512 crypt rounds=1000001 is outside 1000 to 1000000 (above, each "
	    "check would hold a worker thread for a second or more)", "SHA-512 rounds too many");
	refused("bob:$5$rounds=999$abc$mw/SRs9Nv/FF/u7Gj7Qy6qEjZ5r7DYsQ/ZgrUzKSW28",
	    "user \"bob\": SHA-256 crypt rounds=999 is outside 1000 to 1000000 (above, each "
	    "check would hold a worker thread for a second or more)", "SHA-256 rounds too few");
	const char *sha_bad = "user \"bob\": not a well-formed SHA-512 crypt hash ($6$, rounds=N$ "
	    "or not, up to 16 characters of salt, $, 86 of hash)";
	refused("bob:$6$HO.1hsBmvCrPSSDg$HQnE0L", sha_bad, "SHA-512, hash too short");
	refused("bob:$6$HO.1hsBmvCrPSSDgX$HQnE0L.ATG31n14YrY0Re5tDygaZub9PK4yj1NiBCQDQzEqZ7k5MgMcqE7F0Oed0OQh.k4t.zwSs6S1gdPehh.",
	    sha_bad, "SHA-512, 17 bytes of salt");
	refused("bob:$6$rounds=01000$abc$8p/zTwEpqHoHKx7V4Sa/fihip3UEeZ5xfPTFkojkBautZsLO8faeY0r2QH.reF/pgX2xJrPS5Gz.YUKFb9oVc/",
	    sha_bad, "SHA-512, rounds with a leading zero");
	refused("bob:$6$rounds=$abc$8p/zTwEpqHoHKx7V4Sa/fihip3UEeZ5xfPTFkojkBautZsLO8faeY0r2QH.reF/pgX2xJrPS5Gz.YUKFb9oVc/",
	    sha_bad, "SHA-512, rounds without digits");
	refused("bob:$6$", sha_bad, "SHA-512, the prefix alone");

	struct htpasswd h;
	is(htpasswd_parse("a:" H_ALICE "\nb:" H_ALICE "\0\n", strlen("a:" H_ALICE "\nb:" H_ALICE) + 2,
	    &h, &rep), -1, "a NUL byte: refused");
}

static void
test_duplicates_and_bounds(void)
{
	struct htpasswd h;

	is(parse("alice:" H_ALICE "\nbob:" H_SHA512 "\nalice:" H_SHA512 "\n#\nalice:" H_2A "\n"
	    "bob:" H_2B "\n", &h), -1, "duplicate users: refused");
	is_str(msgs, "3: user \"alice\" given again (first on line 1)\n"
	    "5: user \"alice\" given again (first on line 1)\n"
	    "6: user \"bob\" given again (first on line 2)\n",
	    "... each repeat with its line and the first one's");

	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	for (int i = 0; i < 30; i++)
		fprintf(f, "u%d:pw\n", i);
	fclose(f);
	is(parse(text, &h), -1, "thirty bad lines: refused");
	is(nmsgs, HTPASSWD_MAX_ERRORS + 1, "... %d reported, then one line for the rest",
	    HTPASSWD_MAX_ERRORS);
	ok(strstr(msgs, "\n20: user \"u19\"") != NULL && strstr(msgs, "u20") == NULL &&
	    strstr(msgs, "\n0: 10 more errors not shown\n") != NULL, "... \"10 more errors not shown\"");
	free(text);

	f = open_memstream(&text, &len);
	for (int i = 0; i <= HTPASSWD_MAX_USERS; i++)
		fprintf(f, "user%d:" H_ALICE "\n", i);
	fclose(f);
	is(parse(text, &h), -1, "%d users: refused", HTPASSWD_MAX_USERS + 1);
	char want[64];
	snprintf(want, sizeof(want), "%d: more than %d users\n", HTPASSWD_MAX_USERS + 1,
	    HTPASSWD_MAX_USERS);
	is_str(msgs, want, "... with the line of the one too many");
	text[len - strlen("user65536:" H_ALICE "\n")] = '\0';
	is(parse(text, &h), 0, "%d users: taken", HTPASSWD_MAX_USERS);
	ok(h.n == HTPASSWD_MAX_USERS && htpasswd_find(&h, "user65535", 9) != NULL &&
	    htpasswd_find(&h, "user0", 5) != NULL, "... every one found");
	htpasswd_free(&h);
	free(text);

	/* A user line of exactly the longest length is taken. */
	char line[HTPASSWD_MAX_LINE + 2];
	size_t ulen = HTPASSWD_MAX_LINE - 1 - strlen(H_SHA512R);
	ok(ulen > HTPASSWD_MAX_USER, "(a line that long needs blanks: the user is at most 255)");
	memset(line, 'x', HTPASSWD_MAX_USER);
	snprintf(line + HTPASSWD_MAX_USER, sizeof(line) - HTPASSWD_MAX_USER, ":%s", H_SHA512R);
	is(parse(line, &h), 0, "a 255-byte user name is taken");
	htpasswd_free(&h);
	char comment[3 * HTPASSWD_MAX_LINE];
	snprintf(comment, sizeof(comment), "# %0*d\nbob:%s\n", HTPASSWD_MAX_LINE * 2, 0, H_2A);
	is(parse(comment, &h), 0, "a comment longer than a line may be is skipped");
	htpasswd_free(&h);
}

static void
test_load(void)
{
	char path[] = "/tmp/portico-test-htpasswd-XXXXXX";
	struct htpasswd h;
	int fd = mkstemp(path);

	ok(fd >= 0, "a temporary file");
	const char *text = "alice:" H_ALICE "\nbob:$apr1$l9dLEbOl$Ig4UBiAr811tPsdf37.Ww.\n";
	ok(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "written");
	close(fd);
	msgs[0] = '\0';
	is(htpasswd_load(path, &h, &rep), -1, "load: a file with an MD5 line is refused");
	is_str(msgs, "2: user \"bob\": MD5 ($apr1$) hashes are refused: make a bcrypt one with "
	    "htpasswd -B\n", "load: the line's message");
	ok(truncate(path, (off_t)strlen("alice:" H_ALICE "\n")) == 0, "the MD5 line cut off");
	msgs[0] = '\0';
	is(htpasswd_load(path, &h, &rep), 0, "load: the good line alone is taken");
	ok(h.n == 1 && strcmp(h.v[0].name, "alice") == 0, "load: alice");
	htpasswd_free(&h);
	unlink(path);
	msgs[0] = '\0';
	is(htpasswd_load(path, &h, &rep), -1, "load: a missing file");
	is_str(msgs, "0: cannot read it: No such file or directory\n", "load: ... says so, line 0");
	msgs[0] = '\0';
	is(htpasswd_load("/tmp", &h, &rep), -1, "load: a directory");
	is_str(msgs, "0: not a regular file\n", "load: ... says so");
	ok(mkfifo(path, 0600) == 0, "a FIFO");
	msgs[0] = '\0';
	is(htpasswd_load(path, &h, &rep), -1, "load: a FIFO, without waiting for a writer");
	is_str(msgs, "0: not a regular file\n", "load: ... not a regular file");
	unlink(path);
}

static void
test_verify(void)
{
	static const struct { const char *hash, *pw; } v[] = {
		{ H_ALICE, "correct horse" },
		{ H_CAROL, "pa:ss w\xc3\xb6rd" },
		{ H_2A, "abc" },
		{ H_2B, "abc" },
		{ H_SHA512, "secret" },
		{ H_SHA256R, "secret" },
		{ H_SHA512R, "pw" },
		{ H_SHA256, "pw" },
		{ H_EMPTY, "" },
	};
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	char bad[64];

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		is(htpasswd_verify(v[i].hash, v[i].pw, cd), 1, "verify %.7s...: the right password", v[i].hash);
		snprintf(bad, sizeof(bad), "%sx", v[i].pw);
		is(htpasswd_verify(v[i].hash, bad, cd), 0, "verify %.7s...: one byte more", v[i].hash);
		if (v[i].pw[0] != '\0') {
			snprintf(bad, sizeof(bad), "%.*s", (int)strlen(v[i].pw) - 1, v[i].pw);
			is(htpasswd_verify(v[i].hash, bad, cd), 0, "verify %.7s...: one byte less", v[i].hash);
		}
	}
	ok(cd->output[0] == '\0', "the scratch is wiped after a check");
	char h[128];
	snprintf(h, sizeof(h), "%s", H_SHA512);
	h[strlen(h) - 1] = 'x';
	is(htpasswd_verify(h, "secret", cd), 0, "a hash changed in its last byte does not match");
	snprintf(h, sizeof(h), "%s", H_ALICE);
	h[10] = '!';
	is(htpasswd_verify(h, "correct horse", cd), 0, "a hash crypt cannot read does not match");
	free(cd);
}

/* Standard base64, padded. */
static void
b64(const char *in, size_t len, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = 0;

	for (size_t i = 0; i < len; i += 3) {
		unsigned w = (unsigned char)in[i] << 16;
		if (i + 1 < len)
			w |= (unsigned char)in[i + 1] << 8;
		if (i + 2 < len)
			w |= (unsigned char)in[i + 2];
		out[n++] = a[w >> 18 & 63];
		out[n++] = a[w >> 12 & 63];
		out[n++] = i + 1 < len ? a[w >> 6 & 63] : '=';
		out[n++] = i + 2 < len ? a[w & 63] : '=';
	}
	out[n] = '\0';
}

static int
cred(const char *v, char *out, size_t *ulen)
{
	return basic_credentials(v, strlen(v), out, BASIC_MAX_CREDENTIALS + 1, ulen);
}

static void
test_credentials(void)
{
	char out[BASIC_MAX_CREDENTIALS + 1], v[2048], raw[BASIC_MAX_CREDENTIALS + 2];
	size_t ulen = 999;

	is(cred("Basic YWxpY2U6c2VjcmV0", out, &ulen), 12, "Basic alice:secret: 12 bytes");
	ok(strcmp(out, "alice:secret") == 0 && ulen == 5, "... user alice, colon at 5");
	is(cred("basic   Ym9iOnBhOnNz", out, &ulen), 9, "scheme in any case, several spaces");
	ok(strcmp(out, "bob:pa:ss") == 0 && ulen == 3, "... the first colon splits: bob, pa:ss");
	is(cred("BASIC Og==", out, &ulen), 1, "\":\": empty user and password");
	ok(ulen == 0, "... colon at 0");
	is(cred("Basic YTo=", out, &ulen), 2, "one padding byte");
	is(cred("Basic YWI6", out, &ulen), 3, "no padding");

	const char *bad[] = {
		"", "Basic", "Basic ", "Basic YWxpY2U=" /* alice: no colon */,
		"Bearer YWxpY2U6c2VjcmV0", "Basic\tYWxpY2U6c2VjcmV0", "BasicYWxpY2U6c2VjcmV0",
		"Basic YWxpY2U6c2VjcmV0=", "Basic YWxpY2U6c2VjcmV", "Basic YTo", "Basic YTo==",
		"Basic YTp=" /* unused bits set */, "Basic YR==", "Basic Y===", "Basic ====",
		"Basic YT=6", "Basic YWxp Y2U6", "Basic YWxp-2U6", "Basic YWxpY2U6c2VjcmV0 ",
		"Digest username=\"a\"", "Basic YTo6\x80",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		is(cred(bad[i], out, &ulen), -1, "refused: \"%s\"", bad[i]);

	const char *ctl[] = { "a:b\x01", "a\tb:c", "a:b\x7f", "a:\0b" };
	for (size_t i = 0; i < 4; i++) {
		size_t n = i == 3 ? 4 : strlen(ctl[i]);
		strcpy(v, "Basic ");
		b64(ctl[i], n, v + 6);
		is(cred(v, out, &ulen), -1, "refused: a control byte or NUL in the credentials (%zu)", i);
	}

	/* The bound: BASIC_MAX_CREDENTIALS bytes taken, one more not. */
	memset(raw, 'p', sizeof(raw));
	memcpy(raw, "u:", 2);
	strcpy(v, "Basic ");
	b64(raw, BASIC_MAX_CREDENTIALS, v + 6);
	is(cred(v, out, &ulen), BASIC_MAX_CREDENTIALS, "%d bytes: taken", BASIC_MAX_CREDENTIALS);
	b64(raw, BASIC_MAX_CREDENTIALS + 1, v + 6);
	is(cred(v, out, &ulen), -1, "%d bytes: refused", BASIC_MAX_CREDENTIALS + 1);
	b64(raw, 10, v + 6);
	is(basic_credentials(v, strlen(v), out, 10, &ulen), -1, "a buffer one byte short: refused");
	is(basic_credentials(v, strlen(v), out, 11, &ulen), 10, "a buffer just large enough: taken");
}

int
main(void)
{
	test_syntax();
	test_refused();
	test_duplicates_and_bounds();
	test_load();
	test_verify();
	test_credentials();
	return done_testing();
}

# portico: build, run, test.  Flags come from pkg-config; objects go to build/.
SHELL := /bin/bash

PREFIX  ?= /usr/local
DESTDIR ?=
PKGS     = libevent libevent_pthreads openssl
DEB_PKGS = build-essential pkg-config libevent-dev libssl-dev \
           zlib1g-dev curl python3 perl mandoc openssl clang libclang-rt-14-dev
# type = jwt: JSON (headers, claims, JWKS) is read with jansson.
PKGS     += jansson
DEB_PKGS += libjansson-dev

# type = compress: zlib, brotli and zstd to build; the reference
# decoders (gzip, brotli, zstd) for t/58compress.t.
PKGS    += zlib libbrotlienc libzstd
DEB_PKGS += libbrotli-dev libzstd-dev brotli zstd gzip

CC      ?= cc
CFLAGS  ?= -O2 -g
# Project flags are kept apart from CFLAGS so `make CFLAGS=...` (asan) keeps them.
PORTICO_CFLAGS = -std=c17 -Wall -Wextra -Werror -D_GNU_SOURCE -I. \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
BUILD   ?= build
# type = ratelimit's fleet store (hiredis and its libevent adapter); its
# tests start a redis-server of their own.
DEB_PKGS += libhiredis-dev redis-server
PKGS     += hiredis
# type = basic (common/mw_basic.c): libxcrypt's crypt_rn; htpasswd and
# mkpasswd make the test suite's user files.
DEB_PKGS += libcrypt-dev apache2-utils whois
LDLIBS  += -lcrypt
# The rate limiter's table: 16-byte compare-and-swap (cmpxchg16b).
LDLIBS  += -latomic
# HTTP/2 (common/h2.c): libnghttp2; nghttp and h2load for the tests.
PKGS     += libnghttp2
DEB_PKGS += libnghttp2-dev nghttp2-client
# Headless Chromium: the browser tests (t/lib/browser.py).
DEB_PKGS += chromium
# t/13install.t checks the logrotate example with logrotate --debug.
DEB_PKGS += logrotate
# t/33metrics.t checks `metrics = prometheus` output with promtool check metrics.
DEB_PKGS += prometheus

SRC      = $(wildcard common/*.c origin/*.c proxy/*.c)
LIB_SRC  = $(filter-out common/main.c,$(SRC))
OBJ      = $(SRC:%.c=$(BUILD)/%.o)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC = $(wildcard t/unit/*.c)
UNIT_BIN = $(UNIT_SRC:t/unit/%.c=$(BUILD)/t/unit/%)
FUZZ_SRC = $(wildcard t/fuzz/*.c)

PROVE_ARGS ?=
FUZZ_SECONDS ?= 20

.PHONY: uninstall all run test asan asan-test tsan tsan-test fuzz bench deps install clean unit check-deps

# The demo's HTTPS listener (etc/portico.ini) uses a certificate made here,
# once; no private key is ever committed.
DEMO_CERT = build/demo-cert.pem

all: portico $(DEMO_CERT)

$(DEMO_CERT):
	@mkdir -p build
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
	  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	  -keyout build/demo-key.pem -out $@ 2>/dev/null

portico: $(OBJ)
	$(CC) $(PORTICO_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(LDLIBS)

$(BUILD)/%.o: %.c $(wildcard common/*.h origin/*.h proxy/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(PORTICO_CFLAGS) $(CFLAGS) -c -o $@ $<

# The status page is copied into the binary by the assembler (.incbin).
$(BUILD)/origin/dashboard.o: origin/dashboard.html

$(BUILD)/t/unit/%: t/unit/%.c t/unit/tap.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(PORTICO_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

unit: $(UNIT_BIN)

# Installs what is missing (as root), then checks that the build can find it.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages; run as root:"; \
	    echo "  apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

check-deps:
	@pkg-config --exists $(PKGS) || { echo "missing libraries: run 'make deps' as root" >&2; exit 1; }

run: deps
	$(MAKE) all
	./portico -c etc/portico.ini

test: deps
	$(MAKE) all unit
	prove $(PROVE_ARGS) $(addprefix ./,$(UNIT_BIN)) t/*.t

# The whole suite again, built with AddressSanitizer and UBSan in build-asan/.
asan: deps
	$(MAKE) BUILD=build-asan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" PORTICO_BIN=build-asan/portico asan-test

asan-test: $(BUILD)/portico unit $(DEMO_CERT)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  PORTICO_BIN=$(BUILD)/portico prove $(PROVE_ARGS) $(addprefix ./,$(UNIT_BIN)) t/*.t

$(BUILD)/portico: $(OBJ)
	$(CC) $(PORTICO_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(LDLIBS)

# The whole suite again, built with ThreadSanitizer in build-tsan/, every
# server with at least two workers (PORTICO_MIN_WORKERS, see t/lib/portico.py)
# so that what crosses threads is exercised.  A report fails the test that
# started the server (the harness looks for it, and exitcode=66 makes the
# exit status say so too).  t/tsan.supp is for suppressions in libraries'
# code only, each with its reason; none are needed now.  io_sync=0: by
# default TSan takes a write to any socket (or any file) as a release that
# a later read of any socket (or file), in any thread, acquires: every
# worker's traffic would order it with every other thread's and hide most
# races.  Portico hands nothing between threads through a socket, file or
# pipe.
TSAN_OPTIONS_ALL = halt_on_error=0:exitcode=66:second_deadlock_stack=1:history_size=4:io_sync=0:suppressions=$(CURDIR)/t/tsan.supp

tsan: deps
	$(MAKE) BUILD=build-tsan CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=thread" \
	  LDFLAGS="-fsanitize=thread" PORTICO_BIN=build-tsan/portico tsan-test

tsan-test: $(BUILD)/portico unit $(DEMO_CERT)
	TSAN_OPTIONS=$(TSAN_OPTIONS_ALL) PORTICO_MIN_WORKERS=2 \
	  PORTICO_BIN=$(BUILD)/portico prove $(PROVE_ARGS) $(addprefix ./,$(UNIT_BIN)) t/*.t

# Short libFuzzer run of every target in t/fuzz/ (FUZZ_SECONDS each): each
# t/fuzz/NAME.c is built with the library sources, fed t/fuzz/seed-NAME if
# present, and grows its corpus in $(BUILD)/fuzz/corpus-NAME.  Crash inputs
# go to $(BUILD)/fuzz/artifacts-NAME/, the full output to $(BUILD)/fuzz/NAME.log.
# Every target runs; the recipe fails if any failed to build or found a bug.
fuzz: deps
	@mkdir -p $(BUILD)/fuzz
	@failed=""; for f in $(FUZZ_SRC); do \
	  n=$$(basename $$f .c); out=$(BUILD)/fuzz; \
	  if ! clang -g -O1 -std=c17 -D_GNU_SOURCE -I. -fno-omit-frame-pointer \
	      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	      $$(pkg-config --cflags $(PKGS)) -o $$out/$$n $$f $(LIB_SRC) \
	      $(LDLIBS); then \
	    echo "fuzz: $$n: build failed"; failed="$$failed $$n"; continue; \
	  fi; \
	  mkdir -p $$out/corpus-$$n $$out/artifacts-$$n; \
	  seed=""; if [ -d t/fuzz/seed-$$n ]; then seed=t/fuzz/seed-$$n; fi; \
	  echo "fuzz: $$n: running for $(FUZZ_SECONDS)s$${seed:+ with $$seed}"; \
	  rc=0; UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    $$out/$$n -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=$$out/artifacts-$$n/ $$out/corpus-$$n $$seed \
	    >$$out/$$n.log 2>&1 || rc=$$?; \
	  execs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$out/$$n.log | tail -n 1); \
	  echo "fuzz: $$n: $${execs:-unknown} executions, exit status $$rc"; \
	  if [ $$rc != 0 ]; then \
	    sed -n '/==ERROR\|runtime error\|deadly signal\|Test unit written/,$$p' $$out/$$n.log | head -n 60; \
	    echo "fuzz: $$n: FAILED; full log in $$out/$$n.log"; failed="$$failed $$n"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed" >&2; exit 1; fi

# The peers and the load generator are for the benchmark only: installed
# here (as root), never by deps.
bench: all
	@$(MAKE) --no-print-directory deps DEB_PKGS="wrk nginx haproxy h2o nodejs npm"
	t/bench/run
	t/bench/ws

# make install: the binary, the man pages, the example configurations, the
# demo site, the systemd unit and a logrotate example, with the paths in the
# unit, the logrotate file and the installed configuration rewritten for
# PREFIX, SYSCONFDIR and RUNDIR.  $(SYSCONFDIR)/portico/portico.ini (from
# etc/origin.ini) is written only when there is none: an edited one is kept.
SYSCONFDIR ?= /etc
RUNDIR     ?= /run/portico
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DATADIR     = $(PREFIX)/share/portico
DOCDIR      = $(PREFIX)/share/doc/portico
INSTALL_PATHS = sed -e 's|/usr/local/sbin|$(PREFIX)/sbin|g' -e 's|/etc/portico|$(SYSCONFDIR)/portico|g' \
	  -e 's|/run/portico|$(RUNDIR)|g'

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DATADIR) \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/logrotate.d $(DESTDIR)$(SYSCONFDIR)/portico
	install -m 755 portico $(DESTDIR)$(PREFIX)/sbin/portico
	install -m 644 man/portico.8 $(DESTDIR)$(PREFIX)/share/man/man8/portico.8
	install -m 644 man/portico.ini.5 $(DESTDIR)$(PREFIX)/share/man/man5/portico.ini.5
	install -m 644 etc/*.ini etc/portico.service etc/portico.logrotate $(DESTDIR)$(DOCDIR)/examples/
	rm -rf $(DESTDIR)$(DATADIR)/www
	cp -R etc/www $(DESTDIR)$(DATADIR)/www
	chmod -R u=rwX,go=rX $(DESTDIR)$(DATADIR)/www
	$(INSTALL_PATHS) etc/portico.service > $(DESTDIR)$(UNITDIR)/portico.service
	chmod 644 $(DESTDIR)$(UNITDIR)/portico.service
	$(INSTALL_PATHS) etc/portico.logrotate > $(DESTDIR)$(SYSCONFDIR)/logrotate.d/portico
	chmod 644 $(DESTDIR)$(SYSCONFDIR)/logrotate.d/portico
	@conf=$(DESTDIR)$(SYSCONFDIR)/portico/portico.ini; \
	if [ -e $$conf ]; then echo "kept $$conf (yours; the example is in $(DOCDIR)/examples/origin.ini)"; \
	else sed -e 's|^root = etc/www|root = $(DATADIR)/www|' \
	    -e 's|^;pid_file = /run/portico/portico.pid *;.*|pid_file = $(RUNDIR)/portico.pid|' \
	    etc/origin.ini > $$conf && chmod 644 $$conf && echo "wrote $$conf"; fi

# Removes what make install put, but the configuration (which may be edited).
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/portico $(DESTDIR)$(PREFIX)/share/man/man8/portico.8 \
	  $(DESTDIR)$(PREFIX)/share/man/man5/portico.ini.5 $(DESTDIR)$(UNITDIR)/portico.service \
	  $(DESTDIR)$(SYSCONFDIR)/logrotate.d/portico
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/portico (the configuration)"

clean:
	rm -rf $(BUILD) build-asan build-tsan portico

# portico: build, run, test.  Flags come from pkg-config; objects go to build/.
SHELL := /bin/bash

PREFIX  ?= /usr/local
DESTDIR ?=
PKGS     = libevent libevent_pthreads openssl inih
DEB_PKGS = build-essential pkg-config libevent-dev libssl-dev libinih-dev \
           zlib1g-dev curl python3 perl mandoc openssl clang libclang-rt-14-dev

CC      ?= cc
CFLAGS  ?= -O2 -g
# Project flags are kept apart from CFLAGS so `make CFLAGS=...` (asan) keeps them.
PORTICO_CFLAGS = -std=c17 -Wall -Wextra -Werror -D_GNU_SOURCE -I. \
           -DINIH_VERSION=\"$(shell pkg-config --modversion inih 2>/dev/null)\" \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
BUILD   ?= build

SRC      = $(wildcard common/*.c origin/*.c proxy/*.c)
LIB_SRC  = $(filter-out common/main.c,$(SRC))
OBJ      = $(SRC:%.c=$(BUILD)/%.o)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC = $(wildcard t/unit/*.c)
UNIT_BIN = $(UNIT_SRC:t/unit/%.c=$(BUILD)/t/unit/%)
FUZZ_SRC = $(wildcard t/fuzz/*.c)

PROVE_ARGS ?=
FUZZ_SECONDS ?= 20

.PHONY: all run test asan fuzz bench deps install clean unit check-deps

all: portico

portico: $(OBJ)
	$(CC) $(PORTICO_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(LDLIBS)

$(BUILD)/%.o: %.c $(wildcard common/*.h origin/*.h proxy/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(PORTICO_CFLAGS) $(CFLAGS) -c -o $@ $<

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

asan-test: $(BUILD)/portico unit
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  PORTICO_BIN=$(BUILD)/portico prove $(PROVE_ARGS) $(addprefix ./,$(UNIT_BIN)) t/*.t

$(BUILD)/portico: $(OBJ)
	$(CC) $(PORTICO_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(LDLIBS)

# Short libFuzzer run of every target in t/fuzz/ (FUZZ_SECONDS each).
fuzz: deps
	@mkdir -p $(BUILD)/fuzz
	@set -e; for f in $(FUZZ_SRC); do \
	  n=$$(basename $$f .c); \
	  clang -g -O1 -std=c17 -D_GNU_SOURCE -I. -fsanitize=fuzzer,address,undefined \
	    $$(pkg-config --cflags $(PKGS)) -o $(BUILD)/fuzz/$$n $$f $(filter-out common/main.c,$(wildcard common/*.c)) \
	    $$(pkg-config --libs $(PKGS)) -lpthread; \
	  mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  echo "fuzz $$n for $(FUZZ_SECONDS)s"; \
	  $(BUILD)/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $(BUILD)/fuzz/corpus-$$n $$( [ -d t/fuzz/seed-$$n ] && echo t/fuzz/seed-$$n ) 2>&1 | \
	    grep -E 'stat::number_of_executed_units|ERROR|SUMMARY' || true; \
	  test $${PIPESTATUS[0]:-0} = 0; \
	done

bench: all
	t/bench/run

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/doc/portico/examples
	install -m 755 portico $(DESTDIR)$(PREFIX)/sbin/portico
	install -m 644 man/portico.8 $(DESTDIR)$(PREFIX)/share/man/man8/portico.8
	install -m 644 man/portico.ini.5 $(DESTDIR)$(PREFIX)/share/man/man5/portico.ini.5
	install -m 644 etc/*.ini $(DESTDIR)$(PREFIX)/share/doc/portico/examples/

clean:
	rm -rf $(BUILD) build-asan portico

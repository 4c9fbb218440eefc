# rlimitd: plain Makefile. `make run` starts the daemon, `make test` runs every test.
#
#   make deps      install the Debian packages everything needs (apt-get; root)
#   make           build the daemon, the C client library, rlimitctl, rlimit-bench
#   make run       run the daemon in the foreground on conf/rlimitd.json
#   make test      every test: unit (Check), end-to-end (real daemon, redis, nginx,
#                  uvicorn), Python, sanitizers, valgrind, a short fuzz run
#   make bench     benchmarks against the peers, ratios printed
#   make asan      build in build-asan/ with SANITIZER=address,undefined and run the tests
#   make fuzz      run each libFuzzer target for FUZZ_SECONDS
#   make install   PREFIX=/usr/local DESTDIR=
#
# Variables: SANITIZER=address,undefined  BUILD=build  VALGRIND="valgrind ..." (prefix
# for the daemon in end-to-end tests)  PYTHON=/usr/bin/python3

CC ?= cc
PYTHON ?= /usr/bin/python3
BUILD ?= build
PREFIX ?= /usr/local
DESTDIR ?=
FUZZ_SECONDS ?= 60
SANITIZER ?=

PKGS := libevent jansson hiredis
DEB_PACKAGES := build-essential pkg-config libevent-dev libhiredis-dev libjansson-dev check \
	redis-server nginx python3 python3-fastapi python3-httpx python3-uvicorn python3-uvloop \
	python3-httptools \
	python3-pytest python3-limits python3-redis clang libclang-rt-14-dev valgrind wrk \
	systemd procps iproute2 psmisc curl

WARN := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-format-truncation
CFLAGS ?= -O2 -g
override CFLAGS += -std=gnu11 $(WARN) -D_GNU_SOURCE -Iproto -Idaemon -Iclients/c
ifneq ($(SANITIZER),)
override CFLAGS += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
override LDFLAGS += -fsanitize=$(SANITIZER)
endif
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

PROTO_SRC := proto/rlproto.c
DAEMON_SRC := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
CLIENT_SRC := clients/c/rlimit.c
UNIT_SRC := $(wildcard tests/unit/test_*.c)
E2E_SRC := $(wildcard tests/e2e/e2e_*.c)
TEST_SUPPORT := $(wildcard tests/support/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

DAEMON_LIB := $(BUILD)/libdaemon.a
CLIENT_LIB := $(BUILD)/librlimit.a
BINS := $(BUILD)/rlimitd $(BUILD)/rlimitctl $(BUILD)/rlimit-bench
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
E2E_BINS := $(patsubst tests/e2e/%.c,$(BUILD)/tests/%,$(E2E_SRC))

.SECONDARY:

.PHONY: all deps run test unit e2e pytest check-asan valgrind fuzz fuzz-short bench asan \
	install clean format

all: $(BINS) $(CLIENT_LIB)

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@# Node.js with npm (only for make bench's peer) may come from elsewhere; else Debian's.
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c $< -o $@

$(DAEMON_LIB): $(call obj,$(DAEMON_SRC) $(PROTO_SRC))
	@rm -f $@
	ar rcs $@ $^

$(CLIENT_LIB): $(call obj,$(CLIENT_SRC) $(PROTO_SRC))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/rlimitd: $(call obj,daemon/main.c) $(DAEMON_LIB)
	$(CC) $(LDFLAGS) $^ $(PKG_LIBS) -lm -o $@

$(BUILD)/rlimitctl: $(call obj,clients/c/rlimitctl.c daemon/escape.c) $(CLIENT_LIB)
	$(CC) $(LDFLAGS) $^ -o $@

$(BUILD)/rlimit-bench: $(call obj,clients/c/rlimit-bench.c) $(CLIENT_LIB)
	$(CC) $(LDFLAGS) $^ -lm -o $@

$(BUILD)/tests/test_%: $(call obj,tests/unit/test_%.c) $(DAEMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(PKG_LIBS) $(CHECK_LIBS) -lm -o $@

$(BUILD)/tests/e2e_%: $(call obj,tests/e2e/e2e_%.c $(TEST_SUPPORT)) $(CLIENT_LIB) $(DAEMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(PKG_LIBS) $(CHECK_LIBS) -lm -o $@

run: deps all
	$(BUILD)/rlimitd -f -c conf/rlimitd.json

# Every test. Each step starts what it needs and cleans up after itself; every step runs
# even when an earlier one failed, and the failed steps are listed at the end.
TEST_STEPS := unit e2e pytest check-asan valgrind fuzz-short
test: deps all
	@failed=""; for step in $(TEST_STEPS); do \
		echo "==== make $$step"; t0=$$(date +%s); \
		$(MAKE) --no-print-directory $$step || failed="$$failed $$step"; \
		echo "==== make $$step: $$(( $$(date +%s) - t0 ))s"; \
	done; \
	if [ -n "$$failed" ]; then echo "make test FAILED:$$failed"; exit 1; fi; \
	echo "make test: every step passed ($(TEST_STEPS))"

unit: $(UNIT_BINS)
	@failed=""; for t in $(UNIT_BINS); do echo "== $$t"; \
		CK_DEFAULT_TIMEOUT=60 $$t || failed="$$failed $$t"; done; \
	if [ -n "$$failed" ]; then echo "unit FAILED:$$failed"; exit 1; fi

e2e: all $(E2E_BINS)
	@failed=""; \
	for t in $(E2E_BINS); do \
		echo "== $$t"; t0=$$(date +%s); RLIMITD_BIN=$(BUILD)/rlimitd \
		RLIMITCTL_BIN=$(BUILD)/rlimitctl RLIMITD_WRAPPER="$(VALGRIND)" CK_DEFAULT_TIMEOUT=120 \
		$$t || failed="$$failed $$t"; echo "== $$t: $$(( $$(date +%s) - t0 ))s"; \
	done; \
	for t in $(sort $(wildcard tests/e2e/test_*.sh)); do \
		echo "== $$t"; t0=$$(date +%s); BUILD=$(BUILD) RLIMITD_WRAPPER="$(VALGRIND)" \
		PYTHON=$(PYTHON) bash $$t || failed="$$failed $$t"; \
		echo "== $$t: $$(( $$(date +%s) - t0 ))s"; \
	done; \
	if [ -n "$$failed" ]; then echo "e2e FAILED:$$failed"; exit 1; fi

pytest: all
	@if [ -d clients/python/tests ]; then \
		RLIMITD_BIN=$(abspath $(BUILD)/rlimitd) PYTHONPATH=clients/python \
		$(PYTHON) -m pytest -q -p no:cacheprovider clients/python/tests; fi

check-asan:
	$(MAKE) --no-print-directory BUILD=build-asan SANITIZER=address,undefined CFLAGS="-O1 -g" unit e2e

valgrind: all
	$(MAKE) --no-print-directory e2e \
		VALGRIND="valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99"

asan: check-asan

fuzz-short:
	@if [ -f tests/fuzz/run.sh ]; then FUZZ_SECONDS=10 bash tests/fuzz/run.sh; fi

fuzz:
	@if [ -f tests/fuzz/run.sh ]; then FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh; fi

bench: deps all
	bash tests/bench/run.sh

# install: binaries, the C header and library, the unit (paths rewritten for PREFIX; in
# $(PREFIX)/lib/systemd/system, which systemd reads for /usr and /usr/local), the config
# for the unit as /etc/rlimitd/rlimitd.json unless one is there, the example configs and
# docs in $(PREFIX)/share/doc/rlimitd, the Python package in
# $(PREFIX)/lib/python3/dist-packages/rlimit.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib \
		$(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/lib/python3/dist-packages/rlimit \
		$(DESTDIR)$(PREFIX)/share/doc/rlimitd/examples/nginx \
		$(DESTDIR)$(PREFIX)/share/doc/rlimitd/examples/systemd \
		$(DESTDIR)$(PREFIX)/share/doc/rlimitd/examples/sidecar $(DESTDIR)/etc/rlimitd
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 clients/c/rlimit.h proto/rlproto.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(CLIENT_LIB) $(DESTDIR)$(PREFIX)/lib/
	sed 's|/usr/local/|$(PREFIX)/|g' rlimitd.service >$(DESTDIR)$(PREFIX)/lib/systemd/system/rlimitd.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/rlimitd.service
	[ -e $(DESTDIR)/etc/rlimitd/rlimitd.json ] || \
		install -m 644 conf/systemd/rlimitd.json $(DESTDIR)/etc/rlimitd/rlimitd.json
	install -m 644 clients/python/rlimit/*.py clients/python/rlimit/py.typed \
		$(DESTDIR)$(PREFIX)/lib/python3/dist-packages/rlimit/
	install -m 644 conf/README.md proto/PROTOCOL.md $(DESTDIR)$(PREFIX)/share/doc/rlimitd/
	install -m 644 conf/rlimitd.json $(DESTDIR)$(PREFIX)/share/doc/rlimitd/examples/
	install -m 644 conf/systemd/rlimitd.json $(DESTDIR)$(PREFIX)/share/doc/rlimitd/examples/systemd/
	install -m 644 conf/nginx/rlimitd.conf $(DESTDIR)$(PREFIX)/share/doc/rlimitd/examples/nginx/
	install -m 644 conf/sidecar/* $(DESTDIR)$(PREFIX)/share/doc/rlimitd/examples/sidecar/

format:
	clang-format -i daemon/*.[ch] proto/*.[ch] clients/c/*.[ch] tests/*/*.[ch]

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

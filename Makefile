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

PKGS := libevent jansson hiredis zlib
DEB_PACKAGES := build-essential pkg-config libevent-dev libhiredis-dev libjansson-dev check \
	redis-server nginx python3 python3-fastapi python3-httpx python3-uvicorn python3-uvloop \
	python3-httptools \
	python3-pytest python3-limits python3-redis clang libclang-rt-14-dev valgrind wrk \
	systemd procps iproute2 psmisc curl lua5.1 clang-format zlib1g-dev goaccess time chromium \
	bc

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

PROTO_SRC := proto/rlproto.c proto/hostport.c
DAEMON_SRC := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
CLIENT_SRC := clients/c/rlimit.c
# rlimitctl replay: linked with the daemon's config, algorithm and memory-store code.
REPLAY_SRC := $(wildcard clients/c/replay*.c)
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
	install clean format format-check demo-replay

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

# The Redis script: daemon/redis_script.lua, checked with luac5.1 (Redis runs Lua 5.1),
# shrunk by daemon/redis_script.awk (comments and blanks out, lines in place), proved to
# compile to the same bytecode as the source, and written as C string literals that
# daemon/redis_script.c includes (its size is checked there).
LUAC ?= luac5.1
SCRIPT_GEN := $(BUILD)/daemon/redis_script
$(SCRIPT_GEN).inc: daemon/redis_script.lua daemon/redis_script.awk
	@mkdir -p $(dir $@)
	@command -v $(LUAC) >/dev/null || { echo "$(LUAC) not found: make deps installs lua5.1"; exit 1; }
	$(LUAC) -s -o $(SCRIPT_GEN).src.luac $<
	awk -f daemon/redis_script.awk $< >$(SCRIPT_GEN).sent.lua
	$(LUAC) -s -o $(SCRIPT_GEN).sent.luac $(SCRIPT_GEN).sent.lua
	cmp $(SCRIPT_GEN).src.luac $(SCRIPT_GEN).sent.luac
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' \
		$(SCRIPT_GEN).sent.lua >$@.tmp
	mv $@.tmp $@
$(BUILD)/daemon/redis_script.o: $(SCRIPT_GEN).inc
$(BUILD)/daemon/redis_script.o: override CFLAGS += -I$(BUILD)/daemon

$(DAEMON_LIB): $(call obj,$(DAEMON_SRC) $(PROTO_SRC))
	@rm -f $@
	ar rcs $@ $^

$(CLIENT_LIB): $(call obj,$(CLIENT_SRC) $(PROTO_SRC))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/rlimitd: $(call obj,daemon/main.c) $(DAEMON_LIB)
	$(CC) $(LDFLAGS) $^ $(PKG_LIBS) -lm -o $@

$(BUILD)/rlimitctl: $(call obj,clients/c/rlimitctl.c daemon/escape.c $(REPLAY_SRC)) $(CLIENT_LIB) \
		$(DAEMON_LIB)
	$(CC) $(LDFLAGS) $^ $(PKG_LIBS) -lm -o $@

$(BUILD)/rlimit-bench: $(call obj,clients/c/rlimit-bench.c) $(CLIENT_LIB)
	$(CC) $(LDFLAGS) $^ -lm -o $@

$(BUILD)/tests/test_%: $(call obj,tests/unit/test_%.c) $(DAEMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(PKG_LIBS) $(CHECK_LIBS) -lm -o $@

# Unit tests of rlimitctl's code: with the replay objects (rlimitctl.c calls replay).
$(BUILD)/tests/test_ctl_json $(BUILD)/tests/test_replay_log: $(BUILD)/tests/test_%: \
		$(call obj,tests/unit/test_%.c $(REPLAY_SRC)) $(DAEMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(PKG_LIBS) $(CHECK_LIBS) -lm -o $@

$(BUILD)/tests/e2e_%: $(call obj,tests/e2e/e2e_%.c $(TEST_SUPPORT)) $(CLIENT_LIB) $(DAEMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(PKG_LIBS) $(CHECK_LIBS) -lm -o $@

run: deps all
	$(BUILD)/rlimitd -f -c conf/rlimitd.json

# Every test. Each step starts what it needs and cleans up after itself. The tests run
# side by side through tests/tools/run_tests.sh (TEST_JOBS at a time, the longest first):
# each test's output is printed whole, with its time, when it ends; every test runs even
# when another failed, and the failed ones are listed at the end. `make test` runs the
# tests of every step in one such run (the ASan and fuzz builds are tests of it too).
TEST_STEPS := unit e2e pytest check-asan valgrind fuzz-short format-check
TEST_JOBS ?= 4
ASAN_BUILD := $(BUILD)-asan
ASAN_MAKE := $(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) SANITIZER=address,undefined \
	CFLAGS="-O1 -g"
FUZZ_BUILD := $(BUILD)-fuzz
VALGRIND_CMD := valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99
RUN_TESTS = bash tests/tools/run_tests.sh -j $(TEST_JOBS) -d $(BUILD)/test-logs/$@
E2E_SH := $(wildcard tests/e2e/test_*.sh)
# The longest first (they start in this order; the others follow).
E2E_LONG := tests/e2e/test_fault_redis.sh tests/e2e/test_accuracy_redis.sh \
	tests/e2e/test_redis_cluster_reshard.sh tests/e2e/test_redis_cluster_failover.sh \
	tests/e2e/test_fault_sighup.sh tests/e2e/test_fault_clients.sh \
	tests/e2e/test_security_conns.sh tests/e2e/test_fault_conns.sh
E2E_ORDER := $(filter $(E2E_SH),$(E2E_LONG)) $(sort $(filter-out $(E2E_LONG),$(E2E_SH)))
FUZZ_TARGETS := frame config http
# tests/tools/fakeclock.c: CLOCK_REALTIME moved on by a test (LD_PRELOAD; never sanitized,
# the daemon under test may be).
FAKECLOCK = $(BUILD)/tests/fakeclock.so
$(BUILD)/tests/fakeclock.so: tests/tools/fakeclock.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=gnu11 $(WARN) -D_GNU_SOURCE -shared -fPIC $< -ldl -o $@

# $(call unit_tests,BUILD_DIR,LABEL_PREFIX[,DEPENDENCY]): the unit tests of run_tests.sh.
unit_tests = $(foreach t,$(UNIT_BINS:$(BUILD)/%=$(1)/%),'$(2)$(notdir $(t))$(3:%=@%)=CK_DEFAULT_TIMEOUT=60 $(t)')
# $(call e2e_tests,BUILD_DIR,LABEL_PREFIX,WRAPPER[,DEPENDENCY]): the end-to-end tests.
e2e_tests = $(foreach t,$(E2E_BINS:$(BUILD)/%=$(1)/%),'$(2)$(notdir $(t))$(4:%=@%)=RLIMITD_BIN=$(1)/rlimitd RLIMITCTL_BIN=$(1)/rlimitctl RLIMITD_WRAPPER="$(3)" CK_DEFAULT_TIMEOUT=120 $(t)') \
	$(foreach t,$(E2E_ORDER),'$(2)$(notdir $(t))$(4:%=@%)=BUILD=$(1) RLIMITD_WRAPPER="$(3)" PYTHON=$(PYTHON) bash $(t)')
PYTEST_TEST = 'pytest=RLIMITD_BIN=$(abspath $(BUILD)/rlimitd) PYTHONPATH=clients/python $(PYTHON) -m pytest -q -p no:cacheprovider clients/python/tests'
# $(call fuzz_tests,SECONDS): the fuzz build, then each target (after it) for SECONDS.
fuzz_tests = 'fuzz-build=FUZZ_BUILD=$(FUZZ_BUILD) bash tests/fuzz/run.sh build' \
	$(foreach f,$(FUZZ_TARGETS),'fuzz-short/$(f)@fuzz-build=FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(1) bash tests/fuzz/run.sh run $(f)')

test: deps all $(UNIT_BINS) $(E2E_BINS) $(FAKECLOCK)
	@rm -rf $(BUILD)/test-logs/test; t0=$$(date +%s); \
	$(RUN_TESTS) -n "make test" -s $(BUILD)/test-logs/test/summary \
		'asan-build=$(ASAN_MAKE) -j2 all $(UNIT_BINS:$(BUILD)/%=$(ASAN_BUILD)/%) $(E2E_BINS:$(BUILD)/%=$(ASAN_BUILD)/%) $(ASAN_BUILD)/tests/fakeclock.so' \
		$(call e2e_tests,$(BUILD),valgrind/,$(VALGRIND_CMD)) \
		$(call fuzz_tests,10) \
		$(call e2e_tests,$(ASAN_BUILD),check-asan/,,asan-build) \
		$(call e2e_tests,$(BUILD),e2e/,) $(PYTEST_TEST) \
		$(call unit_tests,$(ASAN_BUILD),check-asan/,asan-build) $(call unit_tests,$(BUILD),unit/) \
		'format-check=$(MAKE) --no-print-directory format-check'; \
	rc=$$?; failed=$$(awk '$$2 == "FAILED" {sub("/.*", "", $$1); print $$1}' \
		$(BUILD)/test-logs/test/summary | sort -u | tr '\n' ' '); \
	echo "make test: $$(( $$(date +%s) - t0 ))s"; \
	if [ "$$rc" != 0 ] || [ -n "$$failed" ]; then echo "make test FAILED: $${failed:-see above}"; exit 1; fi; \
	echo "make test: every step passed ($(TEST_STEPS))"

unit: $(UNIT_BINS)
	@rm -rf $(BUILD)/test-logs/$@; $(RUN_TESTS) -n unit $(call unit_tests,$(BUILD),)

e2e: all $(E2E_BINS) $(FAKECLOCK)
	@rm -rf $(BUILD)/test-logs/$@; $(RUN_TESTS) -n e2e $(call e2e_tests,$(BUILD),,$(VALGRIND))

pytest: all
	RLIMITD_BIN=$(abspath $(BUILD)/rlimitd) PYTHONPATH=clients/python \
		$(PYTHON) -m pytest -q -p no:cacheprovider clients/python/tests

check-asan:
	$(ASAN_MAKE) unit e2e

valgrind: all
	$(MAKE) --no-print-directory e2e VALGRIND="$(VALGRIND_CMD)"

asan: check-asan

fuzz-short:
	FUZZ_SECONDS=10 FUZZ_BUILD=$(FUZZ_BUILD) bash tests/fuzz/run.sh

fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD=$(FUZZ_BUILD) bash tests/fuzz/run.sh

bench: deps all
	bash tests/bench/run.sh

# make demo-replay: a synthetic day of access log (tests/tools/gen_access_log.py: steady
# traffic on a daily curve, a scraper, a credential stuffer, a search hammer, a burst
# behind one NAT address) replayed against conf/rlimitd.json under
# conf/replay-demo-rules.json; writes $(BUILD)/demo-replay.html and a screenshot of its
# top (the overview and policy api) $(BUILD)/demo-replay.png (headless Chromium; README
# "Replay" shows a copy, conf/replay-demo.png).
DEMO_DIR = $(abspath $(BUILD))
CHROMIUM_FLAGS := --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync --hide-scrollbars
demo-replay: all
	@command -v chromium >/dev/null || { echo "chromium not found: make deps installs it"; exit 1; }
	$(PYTHON) tests/tools/gen_access_log.py -o $(BUILD)/demo-access.log
	$(BUILD)/rlimitctl replay -c conf/rlimitd.json --rules conf/replay-demo-rules.json \
		--html $(BUILD)/demo-replay.html $(BUILD)/demo-access.log
	@profile=$$(mktemp -d) && chromium $(CHROMIUM_FLAGS) --user-data-dir=$$profile \
		--screenshot=$(DEMO_DIR)/demo-replay.png --window-size=1200,1120 \
		file://$(DEMO_DIR)/demo-replay.html 2>/dev/null; rc=$$?; rm -rf $$profile; exit $$rc
	@echo "demo-replay: $(BUILD)/demo-replay.html, $(BUILD)/demo-replay.png"

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
		$(DESTDIR)$(PREFIX)/share/doc/rlimitd/examples/sidecar \
		$(DESTDIR)$(PREFIX)/share/doc/rlimitd/examples/redis $(DESTDIR)/etc/rlimitd
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
	install -m 644 conf/redis/*.json $(DESTDIR)$(PREFIX)/share/doc/rlimitd/examples/redis/

# The C sources kept in .clang-format's layout: `make format` rewrites them, `make
# format-check` (a step of make test) fails on any deviation and names the files.
FORMAT_SRC = $(sort $(wildcard daemon/*.[ch] proto/*.[ch] clients/c/*.[ch] tests/*/*.[ch]))
format:
	clang-format --style=file -i $(FORMAT_SRC)

format-check:
	@bad=""; for f in $(FORMAT_SRC); do \
		clang-format --style=file --dry-run -Werror $$f >/dev/null 2>&1 || bad="$$bad $$f"; \
	done; \
	if [ -n "$$bad" ]; then echo "format-check: not in .clang-format's layout (make format):$$bad"; \
		echo "format-check: 0 passed, 1 failed"; exit 1; fi; \
	echo "format-check: $(words $(FORMAT_SRC)) files in .clang-format's layout"

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

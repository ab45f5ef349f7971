# infergate — build, test, demo.
#
#   make            build every program into bin/ (optimised)
#   make check      sanitizer build, unit tests, a short fuzz run: needs a
#                   compiler and the -dev libraries only (no root, no apt)
#   make test       install what is missing (make deps), then check, then the
#                   integration tests (real processes on loopback)
#   make demo       install what is missing, build, run the two-region lab and the drill
#   make fuzz       run every fuzz target for longer (FUZZ_SECONDS, default 60)
#   make bench      run the benchmarks in bench/ (see bench/README.md)
#   make format     rewrite the C files with clang-format and .clang-format
#
# Layout: src/core is one library for every program; src/infer is the engine;
# each other folder under src/ is one program. SAN=1 builds the sanitizer variant
# into build/san/ (its programs in build/san/bin), which is what the tests run.

# The first rule below is a program's; a plain `make` builds them all.
.DEFAULT_GOAL := all

CC      ?= gcc
CLANG   ?= clang
SAN     ?= 0

WARN    := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
CFLAGS_BASE := -std=gnu11 -g -pthread $(WARN) -D_GNU_SOURCE -Isrc -fno-strict-aliasing
# src/core speaks TLS (OpenSSL) and HTTP/2 (nghttp2): every program links both.
LDLIBS_BASE := -lnghttp2 -lssl -lcrypto -luring -lm -lpthread

ifeq ($(SAN),1)
  B       := build/san
  BIN     := build/san/bin
  OPT     := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDSAN   := -fsanitize=address,undefined
else
  B       := build/rel
  BIN     := bin
  OPT     := -O2
  LDSAN   :=
endif

CFLAGS  := $(CFLAGS_BASE) $(OPT) $(EXTRA_CFLAGS)
LDFLAGS := $(LDSAN) $(EXTRA_LDFLAGS)

# Files named *_avx2.c / *_avx512.c hold SIMD kernels chosen at run time.
AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c

CORE_SRC  := $(wildcard src/core/*.c)
INFER_SRC := $(wildcard src/infer/*.c)
CORE_OBJ  := $(CORE_SRC:src/%.c=$(B)/%.o)
INFER_OBJ := $(INFER_SRC:src/%.c=$(B)/%.o)
LIBCORE   := $(B)/libcore.a
LIBINFER  := $(B)/libinfer.a
# src/weights is a library (pull, object stores, cache, mount) that the server
# links too; its command-line program is src/weights/main.c.
WEIGHTS_SRC := $(filter-out src/weights/main.c,$(wildcard src/weights/*.c))
WEIGHTS_OBJ := $(WEIGHTS_SRC:src/%.c=$(B)/%.o)
LIBWEIGHTS  := $(B)/libweights.a

# program name : source folder : extra libraries
PROGRAMS := infergate infergate-sim infergate-server infergate-weights infergate-lab \
            infergate-bench infergate-mkmodel infergate-run
dir_infergate         := gateway
dir_infergate-sim     := sim
dir_infergate-server  := server
dir_infergate-weights := weights
dir_infergate-lab     := lab
dir_infergate-bench   := bench
dir_infergate-mkmodel := tools/mkmodel
dir_infergate-run     := tools/run
libs_infergate         := -lyaml -lssl -lcrypto
libs_infergate-sim     := -lyaml -lssl -lcrypto
libs_infergate-server  := -lyaml -lcurl -lssl -lcrypto
libs_infergate-weights := -lyaml -lfuse3 -lcurl -lssl -lcrypto
libs_infergate-lab     := -lyaml -lssl -lcrypto
libs_infergate-bench   := -lyaml -lssl -lcrypto
libs_infergate-mkmodel := -lyaml -lssl -lcrypto
libs_infergate-run     := -lyaml -lssl -lcrypto
# Programs that link the engine, and the weights library.
uses_infer   := infergate-server infergate-mkmodel infergate-run
uses_weights := infergate-server

# A program is built only once its folder has sources.
define prog_rule
$(1)_SRC := $$(if $$(filter $(1),infergate-weights),$$(wildcard src/weights/main.c),$$(wildcard src/$$(dir_$(1))/*.c))
$(1)_OBJ := $$($(1)_SRC:src/%.c=$(B)/%.o)
ifneq ($$($(1)_SRC),)
BUILT_PROGRAMS += $(BIN)/$(1)
$(BIN)/$(1): $$($(1)_OBJ) $(if $(filter $(1),$(uses_weights) infergate-weights),$(LIBWEIGHTS)) $(if $(filter $(1),$(uses_infer)),$(LIBINFER)) $(LIBCORE)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(libs_$(1)) $$(LDLIBS_BASE)
endif
endef
$(foreach p,$(PROGRAMS),$(eval $(call prog_rule,$(p))))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

.PHONY: all build deps check test demo fuzz bench clean unit-bins format
all: build
build: $(BUILT_PROGRAMS)
unit-bins: $(UNIT_BIN)

$(B)/%_avx2.o: src/%_avx2.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -MMD -MP -c -o $@ $<
$(B)/%_avx512.o: src/%_avx512.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -MMD -MP -c -o $@ $<
$(B)/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIBCORE): $(CORE_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^
$(LIBINFER): $(INFER_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^
$(LIBWEIGHTS): $(WEIGHTS_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# Unit tests link both libraries; a test of one module uses what it needs.
$(B)/tests/%: tests/unit/%.c tests/unit/t.h $(LIBWEIGHTS) $(LIBINFER) $(LIBCORE)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -MMD -MP -o $@ $< $(LIBWEIGHTS) $(LIBINFER) $(LIBCORE) -lyaml -lfuse3 -lcurl -lssl -lcrypto $(LDLIBS_BASE)

# The dashboard's page is assembled into its object (.incbin).
$(B)/gateway/dashboard.o: src/gateway/dashboard.html

-include $(UNIT_BIN:=.d) $(CORE_OBJ:.o=.d) $(INFER_OBJ:.o=.d) $(WEIGHTS_OBJ:.o=.d) $(foreach p,$(PROGRAMS),$($(p)_OBJ:.o=.d))

# ---------------------------------------------------------------- dependencies
# Debian packages the build, the tests, the benchmarks and the lab use. Only the
# missing ones are installed; npm data packages go into tests/node/node_modules.
DEB_PKGS := gcc make clang clang-format-14 libclang-rt-14-dev libyaml-dev libssl-dev libcurl4-openssl-dev liburing-dev \
            libfuse3-dev fuse3 curl ca-certificates nodejs npm wrk haproxy nginx-light \
            libnghttp2-dev nghttp2-client \
            prometheus iproute2 dnsmasq-base python3 python3-torch python3-numpy procps psmisc chromium
# kubectl (kustomize) for the manifest tests: Debian's, unless one is installed already.
DEB_PKGS += $(if $(shell command -v kubectl),,kubernetes-client)
deps:
	@sh scripts/deps.sh $(DEB_PKGS)

# ---------------------------------------------------------------- test, demo
check:
	$(MAKE) SAN=1 build unit-bins
	TESTS=unit/ sh tests/run.sh build/san
	if command -v $(CLANG) >/dev/null 2>&1; then sh tests/fuzz/run.sh $${FUZZ_SMOKE_SECONDS:-5}; \
	else echo "fuzz: $(CLANG) not found, skipped"; fi

test: deps
	$(MAKE) check
	$(MAKE) SAN=0 build
	TESTS=integration/ sh tests/run.sh build/san

demo: deps build
	sh scripts/demo.sh

fuzz:
	sh tests/fuzz/run.sh $${FUZZ_SECONDS:-60}

bench: deps build
	sh bench/run.sh

# The tree's .clang-format is tuned to the style the code is written in
# (clang-format 14; scripts/format_drift.sh counts the lines it would change).
CLANG_FORMAT ?= $(shell command -v clang-format-14 || echo clang-format)
format:
	$(CLANG_FORMAT) -i $$(git ls-files 'src/*.[ch]' 'tests/*.[ch]')

clean:
	rm -rf build bin

# mrec: one Makefile for the library, the command line, tests, fuzzers and benches.
#
#   make              CPU build: build/cpu/libmrec.a and bin/mrec
#   make CUDA=1       adds kernels/cuda/*.cu (nvcc), links cuBLAS and cuDNN;
#                     compiles and links without a GPU, runs on the CPU there
#   make test         builds and runs every test program; last line "N passed, N failed"
#   make install     bin/mrec, libmrec.a, libmrec.so, include/mrec.h and mrec.pc under
#                     $(DESTDIR)$(PREFIX) (default /usr/local); make uninstall removes them
#   make bench        builds the benchmarks (needs libopenblas-dev), each run by hand
#   make fuzz         libFuzzer targets (clang), FUZZ_SECONDS each (default 60);
#                     FUZZ_RUNS=N stops a target after N inputs; FUZZ_TARGETS="npy json" picks some
#   make emu-check    the CUDA kernels run on the CPU in an emulator (tests/emu), each
#                     against its CPU reference, again under AddressSanitizer, and planted
#                     bugs it must catch
#   make emu-gpu-check  the suites with GPU cases as whole programs on that emulator, with
#                     cuBLAS, cuDNN and the CUDA runtime emulated (no GPU needed)
#   make gpu-check    on a machine with a GPU: CUDA build, every test on the GPU,
#                     compute-sanitizer, report (tools/gpu/check.sh)
#   make gpu-deps     fetches the Debian packages the build needs into .deps/,
#                     for a GPU machine without them (DEPS=prefix uses them),
#                     and stages the data gpu-check reads under shared/data
#   SAN=1             AddressSanitizer + UndefinedBehaviorSanitizer
#   DEBUG=1           -O0 -g3
#   CUDA_ARCH="80 90" the GPU architectures to build for (sm_XX)
#   DEPS=DIR          headers and libraries unpacked under DIR/usr (see gpu-deps)
#   CUDNN_HOME=DIR    cuDNN's include/ and lib/ when it is not in CUDA_HOME
# Knobs combine: make test CUDA=1 SAN=1. Each combination builds in its own
# folder under build/, so switching never mixes objects.

CC       ?= cc
NVCC     ?= nvcc
CUDA_HOME ?= /usr/local/cuda

VARIANT := cpu
ifeq ($(CUDA),1)
VARIANT := cuda
endif
ifeq ($(SAN),1)
VARIANT := $(VARIANT)-san
endif
ifeq ($(DEBUG),1)
VARIANT := $(VARIANT)-debug
endif
BUILD := build/$(VARIANT)

OPT      := -O2
ifeq ($(DEBUG),1)
OPT      := -O0 -g3
endif
# -fPIC: the same objects make libmrec.a and libmrec.so; -Ikernels: the
# public header include/mrec.h finds mrec_status.h as it does once installed.
# -fno-math-errno: nothing reads errno after a math call, and with it set GCC
# keeps every sqrtf a scalar call (Adam's loop stayed scalar); the values are
# the same, sqrt being correctly rounded either way.
CFLAGS   := -std=c11 $(OPT) -g -Wall -Wextra -pthread -fPIC -fno-math-errno -Ikernels -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -MMD -MP
KFLAGS   := -O3
ifeq ($(DEBUG),1)
KFLAGS   :=
endif
LDLIBS   := -lcjson -lyaml -lutf8proc -ljpeg -lz -lmvec -lm -pthread
SANFLAGS :=
ifeq ($(SAN),1)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
CFLAGS  += $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
ifneq ($(DEPS),)
DEPS_LIB := $(DEPS)/usr/lib/x86_64-linux-gnu
CFLAGS  += -I$(DEPS)/usr/include -I$(DEPS)/usr/include/x86_64-linux-gnu
LDFLAGS += -L$(DEPS_LIB) -Wl,-rpath,$(DEPS_LIB)
endif

# ---- what we found --------------------------------------------------------
HOST_SIMD := $(shell grep -q amx_bf16 /proc/cpuinfo 2>/dev/null && echo amx || (grep -q avx512f /proc/cpuinfo 2>/dev/null && echo avx512 || (grep -q avx2 /proc/cpuinfo 2>/dev/null && echo avx2 || echo scalar)))
$(info mrec build: $(VARIANT) -> $(BUILD))
$(info   SIMD paths: scalar, avx2+fma, avx512f (+ avx512bf16, amx for bf16), chosen at run time (this CPU: $(HOST_SIMD)))
HAVE_NVCC := $(shell command -v $(NVCC) >/dev/null 2>&1 && echo 1)
HAVE_GPU  := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
ifeq ($(CUDA),1)
ifneq ($(HAVE_NVCC),1)
$(error CUDA=1 but nvcc was not found (set NVCC= or PATH))
endif
$(info   ✓ nvcc $(shell $(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'))
ifeq ($(HAVE_GPU),1)
$(info   ✓ GPU)
else
$(info   ✗ GPU (CUDA code compiles and links; runs on the CPU here))
endif
else
ifeq ($(HAVE_NVCC),1)
$(info   nvcc available: make CUDA=1 adds the GPU backend)
endif
endif

# libmicrohttpd, for `mrec serve` only: without its header the command says
# it was left out, and nothing else changes.
HAVE_MHD := $(shell printf '\043include <microhttpd.h>\n' | $(CC) $(filter-out -MMD -MP,$(CFLAGS)) -E - >/dev/null 2>&1 && echo 1)
ifeq ($(HAVE_MHD),1)
$(info   libmicrohttpd: mrec serve)
SERVE_LDLIBS := -lmicrohttpd
else
$(info   no libmicrohttpd (apt-get install libmicrohttpd-dev): mrec serve left out)
endif

# libzip, for the zip checkpoints of torch.save (nn/pytorch.c, mrec convert).
ZIP_CFLAGS := $(shell pkg-config --cflags libzip 2>/dev/null)
ZIP_LIBS   := $(or $(shell pkg-config --libs libzip 2>/dev/null),-lzip)
ifeq ($(shell printf '\043include <zip.h>\n' | $(CC) $(filter-out -MMD -MP,$(CFLAGS)) $(ZIP_CFLAGS) -E - >/dev/null 2>&1 && echo 1),1)
$(info   libzip: PyTorch checkpoints (mrec convert))
else
$(info   ✗ libzip, which the build needs (apt-get install libzip-dev))
endif
CFLAGS += $(ZIP_CFLAGS)
LDLIBS += $(ZIP_LIBS)

# ---- sources --------------------------------------------------------------
KERNEL_SRC := $(filter-out kernels/cpu/cuda_stub.c,$(wildcard kernels/cpu/*.c))
LIB_SRC    := $(KERNEL_SRC) $(wildcard nn/*.c tokenizers/*.c extractors/*.c recsys/*.c)
CUDA_SRC   :=
ifeq ($(CUDA),1)
CUDA_SRC   := $(wildcard kernels/cuda/*.cu)
CFLAGS     += -DMREC_CUDA=1
LDLIBS     += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublasLt -lcublas -lcudart -lstdc++ -ldl -lrt
ifneq ($(CUDNN_HOME),)
LDLIBS     := -L$(CUDNN_HOME)/lib -Wl,-rpath,$(CUDNN_HOME)/lib $(LDLIBS)
endif
else
LIB_SRC    += kernels/cpu/cuda_stub.c
endif
# The command line: its main, and the rest (config reading, option parsing,
# the commands) as a second archive that the tests link too.
TOOL_MAIN  := tools/mrec.c
TOOL_SRC   := $(filter-out $(TOOL_MAIN),$(wildcard tools/*.c))
TEST_SRC   := $(wildcard tests/test_*.c)
TEST_BINS  := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))

LIB_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) $(patsubst %.cu,$(BUILD)/%.o,$(CUDA_SRC))
TOOL_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(TOOL_SRC))
LIB      := $(BUILD)/libmrec.a
TOOLS_LIB := $(BUILD)/libmrec_tools.a

CUDA_ARCH ?= 80 90
NVCCFLAGS := -O3 -std=c++17 -Xcompiler -fPIC,-Wall \
             $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a)) \
             -gencode arch=compute_$(lastword $(CUDA_ARCH)),code=compute_$(lastword $(CUDA_ARCH))
ifneq ($(CUDNN_HOME),)
NVCCFLAGS += -I$(CUDNN_HOME)/include
endif

.PHONY: all test bench fuzz clean format bin/mrec demo weights gpu-check gpu-deps install uninstall
all: bin/mrec

# bin/mrec is whichever variant was built last, so it is always refreshed.
bin/mrec: $(BUILD)/mrec
	@mkdir -p bin
	@cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/mrec: $(BUILD)/$(TOOL_MAIN:.c=.o) $(TOOLS_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(BUILD)/$(TOOL_MAIN:.c=.o) $(TOOLS_LIB) $(LIB) $(LDLIBS) $(SERVE_LDLIBS)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(TOOLS_LIB): $(TOOL_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/tools/cmd_serve.o: CFLAGS += $(if $(HAVE_MHD),-DMREC_HAVE_MHD)
# The recommenders' host loops (activations, normalizations, sums over
# every node) are element-wise too: -O3 runs them several lanes at a time.
$(BUILD)/recsys/%.o: CFLAGS += $(KFLAGS)
# PIL's resampling sums a row of pixels per tap: -O3 runs those sums in vector lanes.
$(BUILD)/extractors/resize.o: CFLAGS += $(KFLAGS)

# Kernels: -O3 for vectorization; the SIMD micro-kernels get their ISA flags
# (only these files; dispatch at run time keeps the rest baseline x86-64).
$(BUILD)/kernels/cpu/%.o: kernels/cpu/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KFLAGS) -c $< -o $@
$(BUILD)/kernels/cpu/gemm_avx2.o: kernels/cpu/gemm_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KFLAGS) -mavx2 -mfma -c $< -o $@
$(BUILD)/kernels/cpu/gemm_avx512.o: kernels/cpu/gemm_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KFLAGS) -mavx512f -mfma -c $< -o $@
$(BUILD)/kernels/cpu/gemm_bf16.o: kernels/cpu/gemm_bf16.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KFLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mamx-tile -mamx-bf16 -mfma -c $< -o $@
$(BUILD)/kernels/cpu/conv_nhwc.o: kernels/cpu/conv_nhwc.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KFLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mfma -c $< -o $@
$(BUILD)/kernels/cpu/encoder_bf16.o: kernels/cpu/encoder_bf16.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(KFLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mfma -c $< -o $@

$(BUILD)/kernels/cuda/%.o: kernels/cuda/%.cu kernels/cuda/cuda_internal.h kernels/mrec_kernels.h kernels/rank_metrics.h kernels/philox.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# ---- tests ----------------------------------------------------------------
$(BUILD)/tests/harness.o: tests/harness.c tests/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/%: tests/%.c tests/harness.h $(BUILD)/tests/harness.o $(TOOLS_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/tests/harness.o $(TOOLS_LIB) $(LIB) $(LDLIBS) $(SERVE_LDLIBS)

test: $(BUILD)/mrec $(TEST_BINS)
	@sh tests/run.sh $(BUILD) $(TEST_BINS)

# The demo, its printed numbers checked against expected ranges (tests/check_demo.sh).
demo: bin/mrec
	@sh tests/check_demo.sh

# Checkpoints of weights/manifest.tsv (WEIGHTS=all for every one; large).
WEIGHTS ?= sentence-transformers/all-MiniLM-L6-v2
weights:
	weights/fetch $(WEIGHTS)

# ---- bench ----------------------------------------------------------------
BENCH_SRC  := $(wildcard bench/bench_*.c)
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
OPENBLAS_CFLAGS := -I/usr/include/x86_64-linux-gnu/openblas-pthread
OPENBLAS_LIBS   := -L/usr/lib/x86_64-linux-gnu/openblas-pthread -lopenblas

$(BUILD)/bench/%: bench/%.c $(TOOLS_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(TOOLS_LIB) $(LIB) $(LDLIBS) $(SERVE_LDLIBS)

# Only the GEMM bench links OpenBLAS, its peer (a GPU machine has none).
$(BUILD)/bench/bench_gemm: bench/bench_gemm.c $(TOOLS_LIB) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(OPENBLAS_CFLAGS) $(LDFLAGS) -o $@ $< $(TOOLS_LIB) $(LIB) $(OPENBLAS_LIBS) $(LDLIBS) $(SERVE_LDLIBS)

# Built, not run: most need a checkpoint or a Python with PyTorch (each says which when run without).
bench: $(BENCH_BINS)
	@echo "benchmarks built in $(BUILD)/bench/; run each by hand (README.md, Building, gives the setup)"

# ---- fuzzing (clang + libFuzzer) ------------------------------------------
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -std=c11 -g -O1 -Ikernels -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -pthread \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRC := kernels/cpu/status.c kernels/cpu/arena.c nn/io.c nn/numbers.c nn/hf_config.c nn/tensor.c kernels/cpu/cuda_stub.c nn/safetensors.c nn/npy.c \
                extractors/decode.c tools/config.c tools/parse.c tools/elliot_config.c $(wildcard tokenizers/*.c)
FUZZ_SRC     := $(if $(FUZZ_TARGETS),$(patsubst %,tests/fuzz/fuzz_%.c,$(FUZZ_TARGETS)),$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(FUZZ_SRC))
# The rest of the library, for what the parsers reach (the Elliot reader checks
# hyper-parameters against the model registry): an archive, so a target links
# only the objects it uses.
FUZZ_REST_SRC := $(filter-out $(FUZZ_LIB_SRC) $(TOOL_MAIN),$(wildcard kernels/cpu/*.c nn/*.c tokenizers/*.c extractors/*.c recsys/*.c tools/*.c))
FUZZ_REST     := build/fuzz/libmrec_rest.a

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(subst -fsanitize=fuzzer,-fsanitize=fuzzer-no-link,$(FUZZ_FLAGS)) $(FUZZ_ISA) -c $< -o $@
build/fuzz/obj/kernels/cpu/gemm_avx2.o: FUZZ_ISA := -mavx2 -mfma
build/fuzz/obj/kernels/cpu/gemm_avx512.o: FUZZ_ISA := -mavx512f -mfma
build/fuzz/obj/kernels/cpu/gemm_bf16.o: FUZZ_ISA := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mamx-tile -mamx-bf16 -mfma
build/fuzz/obj/kernels/cpu/conv_nhwc.o: FUZZ_ISA := -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mfma
build/fuzz/obj/kernels/cpu/encoder_bf16.o: FUZZ_ISA := -mavx512f -mavx512bw -mavx512vl -mavx512bf16 -mfma

$(FUZZ_REST): $(patsubst %.c,build/fuzz/obj/%.o,$(FUZZ_REST_SRC))
	@rm -f $@
	ar rcs $@ $^

# A tiny JPEG can declare a 179-megapixel image that decodes: the image
# fuzzer lowers the pixel limit to 4 megapixels so that one execution stays
# in milliseconds; the code paths, the refusal above the limit among them,
# are the same.
build/fuzz/fuzz_image: FUZZ_DEFS := -DMREC_IMAGE_MAX_PIXELS='((int64_t)1 << 22)'
build/fuzz/%: tests/fuzz/%.c tests/fuzz/scratch.h $(FUZZ_LIB_SRC) $(FUZZ_REST)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) $(FUZZ_DEFS) -o $@ $< $(FUZZ_LIB_SRC) $(FUZZ_REST) -lcjson -lyaml -lutf8proc -ljpeg $(ZIP_LIBS) -lz -lmvec -lm

# fuzz_tokenize's and fuzz_unigram_tokenize's inputs stop at 1 KB: a text's
# cost grows linearly with its length (4 KB take 30-40 ms under the
# sanitizers), and 1 KB already holds a word past every length limit the
# tokenizers have (WordPiece's 100 characters), so longer inputs cut the
# executions per second (Unigram: 1,180 a second at 4 KB, 1,640 at 1 KB)
# and add no path.
fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do \
	  name=$$(basename $$f); mkdir -p build/fuzz/corpus-$$name; \
	  echo "== $$name ($(FUZZ_SECONDS) s)"; \
	  case $$name in fuzz_tokenize|fuzz_unigram_tokenize) opts=-max_len=1024;; *) opts=;; esac; \
	  if ! $$f -max_total_time=$(FUZZ_SECONDS) $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS)) $$opts -print_final_stats=1 -artifact_prefix=build/fuzz/$$name- \
	      $$(test -f tests/fuzz/$$name.dict && echo -dict=tests/fuzz/$$name.dict) \
	      build/fuzz/corpus-$$name tests/fuzz/corpus/$$name > build/fuzz/$$name.log 2>&1; then \
	    tail -n 40 build/fuzz/$$name.log; echo "FAIL $$name: see build/fuzz/$$name.log"; exit 1; fi; \
	  grep -E "stat::number_of_executed_units|stat::new_units_added|stat::peak_rss" build/fuzz/$$name.log; \
	done

# ---- GPU machine ------------------------------------------------------------
GPU_DEBS := libcjson-dev libcjson1 libyaml-dev libyaml-0-2 libutf8proc-dev libutf8proc2 \
            libjpeg62-turbo-dev libjpeg62-turbo libstb-dev zlib1g-dev zlib1g \
            libzip-dev libzip4
gpu-deps:
	@mkdir -p .deps && cd .deps && apt-get download $(GPU_DEBS)
	@ls .deps
	@sh tools/gpu/stage.sh

gpu-check:
	@sh tools/gpu/check.sh

# ---- install ----------------------------------------------------------------
# libmrec.a and libmrec.so hold the library and the public interface
# (tools/api.c), not the command line. The shared library exports only what
# include/mrec.map lists.
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
VERSION := $(shell sed -n 's/^#define MREC_VERSION "\(.*\)"/\1/p' include/mrec.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
DIST_A  := $(BUILD)/dist/libmrec.a
DIST_SO := $(BUILD)/dist/libmrec.so.$(VERSION)

DIST_OBJ := $(LIB_OBJ) $(BUILD)/tools/api.o
$(DIST_A): $(DIST_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	ar rcs $@ $^

$(DIST_SO): $(DIST_OBJ) include/mrec.map
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libmrec.so.$(SOMAJOR) -Wl,--version-script=include/mrec.map -Wl,--no-undefined \
	    -o $@ $(DIST_OBJ) $(LDLIBS)

install: $(BUILD)/mrec $(DIST_A) $(DIST_SO)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)
	install -m 755 $(BUILD)/mrec $(DESTDIR)$(PREFIX)/bin/mrec
	install -m 644 $(DIST_A) $(DESTDIR)$(LIBDIR)/libmrec.a
	install -m 755 $(DIST_SO) $(DESTDIR)$(LIBDIR)/libmrec.so.$(VERSION)
	ln -sf libmrec.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libmrec.so.$(SOMAJOR)
	ln -sf libmrec.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libmrec.so
	install -m 644 include/mrec.h kernels/mrec_status.h $(DESTDIR)$(INCDIR)/
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCDIR)' '' 'Name: mrec' \
	    'Description: multimodal recommendation: encoders and recommenders in C' 'Version: $(VERSION)' \
	    'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lmrec' 'Libs.private: $(LDLIBS)' > $(DESTDIR)$(LIBDIR)/pkgconfig/mrec.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/mrec $(DESTDIR)$(LIBDIR)/libmrec.a $(DESTDIR)$(LIBDIR)/libmrec.so \
	    $(DESTDIR)$(LIBDIR)/libmrec.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libmrec.so.$(VERSION) \
	    $(DESTDIR)$(INCDIR)/mrec.h $(DESTDIR)$(INCDIR)/mrec_status.h $(DESTDIR)$(LIBDIR)/pkgconfig/mrec.pc

# ---- the CUDA kernels on the CPU (tests/emu) ----
# make emu-check: runs kernels/cuda/*.cu on the CPU, in an emulator (tests/emu/cuda_emu.h says what it
# models and what not), each kernel against libmrec's CPU reference, so that the GPU code is tested on
# machines without a GPU; runs them again built with AddressSanitizer; then plants bugs in copies of the
# kernels (tests/emu/mutations) and requires the tests to catch each. Needs g++ and the CUDA headers
# (CUDA_HOME, and CUDNN_HOME where cuDNN's are elsewhere), no GPU and no nvcc; without them it prints
# "skipped". Against the plain CPU build only.
EMU          := build/emu
EMU_CXX      ?= g++
EMU_TESTS    := attention spmm ops backward conv train losses elementwise encoder gemm pool
EMU_BINS     := $(patsubst %,$(EMU)/test_%,$(EMU_TESTS))
# -Itests/emu first: its cub/ stands in for CUDA's (tests/emu/cub/device/device_radix_sort.cuh)
EMU_INC      := -Itests/emu -I$(CUDA_HOME)/include $(if $(CUDNN_HOME),-I$(CUDNN_HOME)/include) -Ikernels/cuda -Ikernels
# -ffp-contract=off: no fused multiply-add but the explicit ones (cuda_emu.h, Limits)
EMU_CXXFLAGS := -std=c++17 -O2 -g -fno-strict-aliasing -ffp-contract=off -pthread $(EMU_INC)
# the kernels: device code compiled as host C++ (unused-parameter and the like are not its warnings)
EMU_KFLAGS   := $(EMU_CXXFLAGS) -w -include tests/emu/cuda_emu.h
EMU_COMMON   := $(EMU)/cuda_emu.o $(EMU)/device.o $(EMU)/cuda_stubs.o $(BUILD)/tests/harness.o
# why emu-check cannot run here (empty when it can); worked out only when emu-check is asked for
ifneq ($(filter emu-check emu-gpu-check,$(MAKECMDGOALS)),)
EMU_HAVE_CXX := $(shell command -v $(EMU_CXX) >/dev/null 2>&1 && echo 1)
EMU_HAVE_HDR := $(shell printf '\043include <cuda_bf16.h>\n\043include <cublasLt.h>\n\043include <cudnn.h>\n' | \
                  $(EMU_CXX) -x c++ -std=c++17 $(EMU_INC) -E - >/dev/null 2>&1 && echo 1)
ifneq ($(VARIANT),cpu)
EMU_SKIP := emu-check and emu-gpu-check run against the plain CPU build, not with CUDA=1, SAN=1 or DEBUG=1
else ifneq ($(EMU_HAVE_CXX),1)
EMU_SKIP := emu-check needs a C++ compiler ($(EMU_CXX) not found)
else ifneq ($(EMU_HAVE_HDR),1)
EMU_SKIP := emu-check needs the CUDA headers cuda_bf16.h, cublasLt.h and cudnn.h (looked in $(CUDA_HOME)/include; set CUDA_HOME, CUDNN_HOME)
endif
endif

.PHONY: emu-check
emu-check: $(if $(EMU_SKIP),,$(EMU_BINS) emu-asan-bins $(EMU)/mutations)
	@$(if $(EMU_SKIP),echo "skipped: $(EMU_SKIP)",ASAN_OPTIONS=detect_leaks=0 MREC_TEST_JOBS=$${MREC_TEST_JOBS:-2} sh tests/run.sh $(EMU) \
	    $(EMU_BINS) $(EMU_ASAN_BINS) $(EMU)/mutations)

# The same tests again with AddressSanitizer over the kernels and the emulator (tests/emu/cuda_emu.cpp tells it
# of each fiber's stack): a kernel's read or write past its dynamic or static shared memory, a local array or a
# buffer's allocation stops the test, naming the kernel's line. Built by a make of its own, in $(EMU)/asan.
EMU_ASAN_FLAGS := -fsanitize=address -fno-omit-frame-pointer
EMU_ASAN_BINS  := $(patsubst %,$(EMU)/asan/test_%,$(EMU_TESTS))
.PHONY: emu-asan-bins
emu-asan-bins: $(LIB) $(BUILD)/tests/harness.o
	@$(MAKE) --no-print-directory EMU=$(EMU)/asan EMU_CXXFLAGS='$(EMU_CXXFLAGS) $(EMU_ASAN_FLAGS)' \
	    LDFLAGS='$(LDFLAGS) -fsanitize=address' $(EMU_ASAN_BINS)

$(EMU)/transform: tests/emu/transform.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -o $@ $<
$(EMU)/%_emu.cpp: kernels/cuda/%.cu $(EMU)/transform
	$(EMU)/transform $< $@
# gemm.cu, conv.cu and ops.cu: their static kernels reached only through cuBLAS or cuDNN get launchers (tests/emu/statics.h)
$(EMU)/gemm_emu.cpp $(EMU)/conv_emu.cpp $(EMU)/ops_emu.cpp: $(EMU)/%_emu.cpp: kernels/cuda/%.cu tests/emu/%_statics.cu tests/emu/statics.h $(EMU)/transform
	$(EMU)/transform $< $@.tmp && $(EMU)/transform tests/emu/$*_statics.cu $@.tail && cat $@.tmp $@.tail > $@ && rm -f $@.tmp $@.tail
$(EMU)/%_emu.o: $(EMU)/%_emu.cpp tests/emu/cuda_emu.h tests/emu/emu_runtime.h tests/emu/cub/device/device_radix_sort.cuh kernels/cuda/cuda_internal.h kernels/mrec_kernels.h kernels/rank_metrics.h kernels/philox.h
	$(EMU_CXX) $(EMU_KFLAGS) -c $< -o $@
# weak stubs for what an emulated kernel file names but nothing here defines (cuBLAS, cuDNN, ...)
$(EMU)/%_emu_stubs.c: $(EMU)/%_emu.o tests/emu/stubs.sh
	sh tests/emu/stubs.sh object $< $@
$(EMU)/cuda_stubs.c: kernels/mrec_kernels.h tests/emu/stubs.sh
	@mkdir -p $(dir $@)
	sh tests/emu/stubs.sh header $< $@
$(EMU)/%_stubs.o: $(EMU)/%_stubs.c
	$(CC) -std=c11 -O1 -Wall -Wextra -c $< -o $@
$(EMU)/%.o: tests/emu/%.cpp tests/emu/cuda_emu.h tests/emu/emu_runtime.h tests/emu/emu_test.h tests/harness.h kernels/mrec_kernels.h
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_CXXFLAGS) -Wall -Wextra -include tests/emu/cuda_emu.h -c $< -o $@
# libmrec without kernels/cpu/cuda_stub.c: the emulated kernels take the GPU entry points' place
$(EMU)/libmrec.a: $(LIB)
	@mkdir -p $(dir $@)
	cp $< $@.tmp && ar d $@.tmp cuda_stub.o && mv -f $@.tmp $@
.PRECIOUS: $(EMU)/%_emu.cpp $(EMU)/%_emu.o $(EMU)/%_emu_stubs.c $(EMU)/%_stubs.o $(EMU)/%.o

# each test: its kernel files; the link line is kept in test_X.link for tests/emu/mutate.sh
$(EMU)/test_attention: $(EMU)/attention_emu.o $(EMU)/attention_emu_stubs.o
$(EMU)/test_spmm $(EMU)/test_ops $(EMU)/test_elementwise $(EMU)/test_pool: $(EMU)/ops_emu.o $(EMU)/ops_emu_stubs.o
$(EMU)/test_backward: $(EMU)/backward_emu.o $(EMU)/backward_emu_stubs.o
$(EMU)/test_conv: $(EMU)/conv_emu.o $(EMU)/conv_emu_stubs.o
$(EMU)/test_gemm: $(EMU)/gemm_emu.o $(EMU)/gemm_emu_stubs.o
$(EMU)/test_gemm.o $(EMU)/test_conv.o $(EMU)/test_ops.o: tests/emu/statics.h
$(EMU)/test_encoder: $(EMU)/encoder_emu.o $(EMU)/encoder_emu_stubs.o $(EMU)/depthwise_emu.o $(EMU)/depthwise_emu_stubs.o
$(EMU)/test_train $(EMU)/test_losses: $(EMU)/train_emu.o $(EMU)/train_emu_stubs.o $(EMU)/ops_emu.o $(EMU)/ops_emu_stubs.o
$(EMU)/test_%: $(EMU)/test_%.o $(EMU_COMMON) $(EMU)/libmrec.a
	$(EMU_CXX) $(LDFLAGS) -o $@ $(filter %.o,$^) $(EMU)/libmrec.a $(LDLIBS)
	@echo "$(filter %.o,$^) $(EMU)/libmrec.a $(LDLIBS)" > $@.link

# Whole GPU programs on the emulator: the test suites with GPU cases linked with every kernel file and the real device.cu,
# the emulated CUDA runtime (tests/emu/runtime.cpp: deferred streams, CUDA graphs, device memory checked),
# cuBLAS, cuBLASLt (tests/emu/cublas_emu.cpp) and cuDNN (tests/emu/cudnn_emu.cpp), in place of the GPU.
# make emu-gpu-check runs them (MREC_EMULATED_GPU: the suites' shapes and epochs sized for the emulator's speed).
EMU_GPU_TESTS := cuda_train cuda extract_pipeline recsys backward ops align altclip
EMU_GPU_BINS  := $(patsubst %,$(EMU)/gpu/test_%,$(EMU_GPU_TESTS))

.PHONY: emu-gpu-check
EMU_GPU_AGAIN := $(EMU)/gpu/test_cuda_fallbacks $(patsubst %,$(EMU)/gpu/test_extract_pipeline_%,le el cc) $(EMU)/gpu/pipe_mutations \
                 $(EMU)/gpu/faults $(EMU)/gpu/races
emu-gpu-check: $(if $(EMU_SKIP),,$(EMU_GPU_BINS) $(EMU)/gpu/mrec $(EMU_GPU_AGAIN))
	@$(if $(EMU_SKIP),echo "skipped: $(EMU_SKIP)",MREC_EMULATED_GPU=1 MREC_TEST_JOBS=$${MREC_TEST_JOBS:-2} sh tests/run.sh $(EMU)/gpu \
	    $(EMU_GPU_BINS) $(EMU_GPU_AGAIN))
# test_cuda again with cuBLASLt finding no algorithm and cuDNN refusing its fused form: the callers' fallbacks
$(EMU)/gpu/test_cuda_fallbacks: $(EMU)/gpu/test_cuda
	@printf '#!/bin/sh\nEMU_LT_NO_ALGO=1 EMU_DNN_NO_FUSED=1 exec %s\n' '$(EMU)/gpu/test_cuda' > $@.tmp && chmod +x $@.tmp && mv -f $@.tmp $@
# the pipelines, whose uploads go on a copy stream, again with the two streams' work run in other orders
# (EMU_SCHEDULE: compute lazy and copies eager, the reverse, both at a coin's toss): a missing wait between them shows
$(EMU)/gpu/test_extract_pipeline_%: $(EMU)/gpu/test_extract_pipeline
	@printf '#!/bin/sh\nEMU_SCHEDULE=%s exec %s\n' '$*' '$(EMU)/gpu/test_extract_pipeline' > $@.tmp && chmod +x $@.tmp && mv -f $@.tmp $@
# and the proof that they catch it: a wait removed from extractors/pipe.c at a time (tests/emu/mutate_pipe.sh)
$(EMU)/gpu/pipe_mutations: tests/emu/mutate_pipe.sh tests/emu/pipe_mutations $(EMU)/gpu/test_extract_pipeline
	@printf '#!/bin/sh\nCC="%s" CFLAGS="%s" LINK="%s" OBJS="%s" exec sh tests/emu/mutate_pipe.sh %s tests/emu/pipe_mutations\n' \
	    '$(CC)' '$(filter-out -MMD -MP,$(CFLAGS))' '$(EMU_CXX) $(LDFLAGS)' \
	    '$(EMU)/gpu/test_extract_pipeline.o $(BUILD)/tests/harness.o $(TOOLS_LIB) $(EMU_GPU_OBJS) $(EMU)/libmrec.a $(LDLIBS) $(SERVE_LDLIBS)' \
	    '$(EMU)/gpu' > $@.tmp && chmod +x $@.tmp && mv -f $@.tmp $@
# the runtime's race check on small programs that say what it must find (tests/emu/test_races.cpp)
$(EMU)/gpu/races: tests/emu/test_races.cpp tests/emu/emu_test.h $(EMU)/cuda_emu.o $(EMU)/runtime.o $(BUILD)/tests/harness.o $(EMU)/libmrec.a
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_CXXFLAGS) -Wall -Wextra -o $@ $< $(EMU)/cuda_emu.o $(EMU)/runtime.o $(BUILD)/tests/harness.o $(EMU)/libmrec.a -lm -pthread
# the command line with each allocation failing in turn, as a full GPU's would, and launches refused (tests/emu/faults.sh)
$(EMU)/gpu/faults: tests/emu/faults.sh $(EMU)/gpu/mrec
	@printf '#!/bin/sh\nexec sh tests/emu/faults.sh %s\n' '$(EMU)/gpu/mrec' > $@.tmp && chmod +x $@.tmp && mv -f $@.tmp $@
EMU_GPU_OBJS  := $(patsubst kernels/cuda/%.cu,$(EMU)/%_emu.o,$(wildcard kernels/cuda/*.cu)) \
                 $(EMU)/cuda_emu.o $(EMU)/runtime.o $(EMU)/cublas_emu.o $(EMU)/cudnn_emu.o
$(EMU)/runtime.o $(EMU)/cublas_emu.o $(EMU)/cudnn_emu.o: $(EMU)/%.o: tests/emu/%.cpp tests/emu/cuda_emu.h tests/emu/emu_runtime.h
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(EMU_CXXFLAGS) -Wall -Wextra -include tests/emu/cuda_emu.h -c $< -o $@
$(EMU)/gpu/%.o: tests/%.c tests/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
$(EMU)/gpu/test_%: $(EMU)/gpu/test_%.o $(BUILD)/tests/harness.o $(EMU_GPU_OBJS) $(TOOLS_LIB) $(EMU)/libmrec.a
	$(EMU_CXX) $(LDFLAGS) -o $@ $< $(BUILD)/tests/harness.o $(TOOLS_LIB) $(EMU_GPU_OBJS) $(EMU)/libmrec.a $(LDLIBS) $(SERVE_LDLIBS)
# the command line too: the suites run it (MREC_BIN) for their end-to-end cases
$(EMU)/gpu/mrec: $(BUILD)/$(TOOL_MAIN:.c=.o) $(EMU_GPU_OBJS) $(TOOLS_LIB) $(EMU)/libmrec.a
	@mkdir -p $(dir $@)
	$(EMU_CXX) $(LDFLAGS) -o $@ $< $(TOOLS_LIB) $(EMU_GPU_OBJS) $(EMU)/libmrec.a $(LDLIBS) $(SERVE_LDLIBS)
.PRECIOUS: $(EMU)/gpu/%.o

# the planted bugs, run as one more test program (tests/emu/mutate.sh)
$(EMU)/mutations: tests/emu/mutate.sh tests/emu/mutations $(EMU_BINS) emu-asan-bins
	@printf '#!/bin/sh\nEMU_CXX="%s" EMU_KFLAGS="%s" EMU_ASAN_FLAGS="%s" exec sh tests/emu/mutate.sh all %s tests/emu/mutations\n' \
	    '$(EMU_CXX)' '$(subst -O2,-O1,$(EMU_KFLAGS))' '$(EMU_ASAN_FLAGS)' '$(EMU)' > $@.tmp && chmod +x $@.tmp && mv -f $@.tmp $@

format:
	clang-format -i $(LIB_SRC) $(TOOL_MAIN) $(TOOL_SRC) $(TEST_SRC) $(wildcard */*.h */*/*.h)

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(BUILD)/$(TOOL_MAIN:.c=.d)

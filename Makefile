# vllm-cpp: the two set-up commands are `make serve` and `make test` (see README.md).
JOBS       ?= $(shell nproc)
BUILD      ?= build
BUILD_TSAN ?= build-tsan
CMAKE_ARGS ?=
PYTHON     := .venv/bin/python
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_MAXSIZE ?= 5G

.PHONY: bootstrap build test unit-test tsan-test python-test serve clean format

bootstrap:
	scripts/bootstrap

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_ARGS)

build: bootstrap $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

unit-test: build
	cd $(BUILD) && ctest --output-on-failure -j 1

# ThreadSanitizer build of the concurrent layers (runtime/, actors/).
tsan-test: bootstrap
	cmake -S . -B $(BUILD_TSAN) -G Ninja -DVLLM_SANITIZE=thread -DVLLM_CUDA=OFF $(CMAKE_ARGS)
	cmake --build $(BUILD_TSAN) -j $(JOBS) --target tsan_tests
	cd $(BUILD_TSAN) && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ctest --output-on-failure -L tsan

python-test: build
	VLLM_CPP_BUILD=$(CURDIR)/$(BUILD) $(PYTHON) -m pytest -q tests/python; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 5 ]

test: build unit-test tsan-test python-test

serve: build
	$(BUILD)/apps/vllm-cpp serve $(ARGS)

format:
	git ls-files '*.cpp' '*.hpp' '*.cu' '*.cuh' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(BUILD_TSAN)

/* cub/device/device_radix_sort.cuh for the emulator: cub::DeviceRadixSort::SortPairs (the one CUB call of
 * kernels/cuda, in train.cu) on the host, with CUB's contract: the pairs stably sorted by the key bits
 * [begin_bit, end_bit), unsigned order of those bits (train.cu's keys are ids, never negative); called with
 * no scratch it only says how much it wants (here 1 byte). The sort goes to the stream like a launch
 * (emu_runtime.h: run in its turn, or recorded by a CUDA graph's capture). Found before CUDA's own through
 * -Itests/emu. */
#pragma once
#include <cuda_runtime.h>
#include "emu_runtime.h"
#include <stddef.h>
#include <stdint.h>
#include <algorithm>
#include <vector>

namespace cub {
struct DeviceRadixSort {
    template <typename K, typename V, typename N>
    static cudaError_t SortPairs(void *scratch, size_t &scratch_bytes, const K *keys_in, K *keys_out, const V *values_in, V *values_out,
                                 N n, int begin_bit = 0, int end_bit = (int)sizeof(K) * 8, cudaStream_t stream = 0) {
        if (!scratch) {
            scratch_bytes = 1;
            return cudaSuccess;
        }
        emu_stream_op(stream, [=]() {
            auto digits = [&](K k) {
                uint64_t u = (uint64_t)k >> begin_bit;
                return end_bit - begin_bit >= 64 ? u : u & ((1ull << (end_bit - begin_bit)) - 1);
            };
            std::vector<size_t> order((size_t)n);
            for (size_t i = 0; i < order.size(); i++) order[i] = i;
            std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return digits(keys_in[a]) < digits(keys_in[b]); });
            std::vector<K> k(order.size());
            std::vector<V> v(order.size());
            for (size_t i = 0; i < order.size(); i++) k[i] = keys_in[order[i]], v[i] = values_in[order[i]];
            std::copy(k.begin(), k.end(), keys_out), std::copy(v.begin(), v.end(), values_out);
        }, "cub::DeviceRadixSort::SortPairs");
        return cudaSuccess;
    }
};
} // namespace cub

// gpubox: adds two vectors on the GPU and checks every element on the host.
// Prints "gpubox-cuda-check ok ..." and exits 0 only when the GPU computed the right answer.
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

#define CHECK(call)                                                                       \
    do {                                                                                  \
        cudaError_t err_ = (call);                                                        \
        if (err_ != cudaSuccess) {                                                        \
            std::fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(err_));     \
            return 2;                                                                     \
        }                                                                                 \
    } while (0)

__global__ void add(const float *a, const float *b, float *c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}

int main() {
    const int n = 1 << 20;
    const size_t bytes = n * sizeof(float);
    float *a = (float *)std::malloc(bytes), *b = (float *)std::malloc(bytes), *c = (float *)std::malloc(bytes);
    for (int i = 0; i < n; ++i) { a[i] = (float)i; b[i] = 2.0f * i; c[i] = -1.0f; }

    int dev = 0, runtime = 0, driver = 0;
    cudaDeviceProp prop;
    CHECK(cudaGetDevice(&dev));
    CHECK(cudaGetDeviceProperties(&prop, dev));
    CHECK(cudaRuntimeGetVersion(&runtime));
    CHECK(cudaDriverGetVersion(&driver));

    float *da, *db, *dc;
    CHECK(cudaMalloc(&da, bytes));
    CHECK(cudaMalloc(&db, bytes));
    CHECK(cudaMalloc(&dc, bytes));
    CHECK(cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice));
    add<<<(n + 255) / 256, 256>>>(da, db, dc, n);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(c, dc, bytes, cudaMemcpyDeviceToHost));

    double sum = 0;
    for (int i = 0; i < n; ++i) {
        if (c[i] != 3.0f * i) {
            std::fprintf(stderr, "wrong result at %d: %f != %f\n", i, c[i], 3.0f * i);
            return 1;
        }
        sum += c[i];
    }
    std::printf("gpubox-cuda-check ok device=\"%s\" cc=%d.%d runtime=%d driver=%d n=%d sum=%.0f\n", prop.name,
                prop.major, prop.minor, runtime, driver, n, sum);
    cudaFree(da); cudaFree(db); cudaFree(dc);
    std::free(a); std::free(b); std::free(c);
    return 0;
}

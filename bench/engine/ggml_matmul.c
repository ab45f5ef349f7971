/*
 * bench/engine/ggml_matmul.c — the quantized matmul kernels side by side with
 * ggml's (the library under llama.cpp) on the same Q8_0 / Q4_0 weight bytes,
 * one thread, in one process: ggml_mul_mat on a graph of one node against
 * quantize_x + matmul_q of the best kernel set, best of N runs each, and the
 * largest difference of their outputs (both quantize the activations to 8
 * bits; ggml keeps the activation scale in f16, infergate in f32).
 *
 * Not part of the build: it links a ggml built outside the repository.
 *   G=/path/to/llama.cpp   # with build/bin/libggml*.so
 *   cc -O2 -Isrc -I$G/ggml/include bench/engine/ggml_matmul.c build/rel/libinfer.a \
 *      -L$G/build/bin -lggml -lggml-base -lggml-cpu -Wl,-rpath,$G/build/bin -lm -o /tmp/ggml_matmul
 *   /tmp/ggml_matmul ROWS REPEATS OUT    (input width 640, the 270m hidden size)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ggml.h"
#include "ggml-cpu.h"
#include "infer/kernels.h"
#include "infer/quant.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
	int IN=640, OUT=argc>3?atoi(argv[3]):2048, B=argc>1?atoi(argv[1]):1, reps=argc>2?atoi(argv[2]):50;
	ggml_cpu_init();
	const kernels*k=kernels_best();
	float*w=malloc((size_t)IN*OUT*4),*x=malloc((size_t)B*IN*4),*o=malloc((size_t)B*OUT*4);
	for(size_t i=0;i<(size_t)IN*OUT;i++)w[i]=(rand()/(float)RAND_MAX-.5f);
	for(size_t i=0;i<(size_t)B*IN;i++)x[i]=(rand()/(float)RAND_MAX-.5f);
	dtype ts[]={DTYPE_Q8_0,DTYPE_Q4_0}; enum ggml_type gts[]={GGML_TYPE_Q8_0,GGML_TYPE_Q4_0};
	for(int ti=0;ti<2;ti++){dtype t=ts[ti];size_t rb=dtype_row_bytes(t,IN);
		struct ggml_init_params ip={.mem_size=(size_t)256<<20,.mem_buffer=NULL,.no_alloc=false};
		struct ggml_context*ctx=ggml_init(ip);
		struct ggml_tensor*W=ggml_new_tensor_2d(ctx,gts[ti],IN,OUT);
		struct ggml_tensor*X=ggml_new_tensor_2d(ctx,GGML_TYPE_F32,IN,B);
		for(int r=0;r<OUT;r++)quant_quantize_row(t,(char*)W->data+r*rb,w+(size_t)r*IN,IN);
		memcpy(X->data,x,(size_t)B*IN*4);
		struct ggml_tensor*Y=ggml_mul_mat(ctx,W,X);
		struct ggml_cgraph*g=ggml_new_graph(ctx);ggml_build_forward_expand(g,Y);
		size_t xb=quant_x_row_bytes(t,IN);char*xq=malloc(xb*B);
		double bg=1e9,bi=1e9;
		for(int rep=0;rep<reps;rep++){
			double t0=now();ggml_graph_compute_with_ctx(ctx,g,1);double dt=now()-t0;if(dt<bg)bg=dt;
			t0=now();for(int b=0;b<B;b++)k->quantize_x(t,xq+b*xb,x+b*IN,IN);k->matmul_q(o,OUT,xq,xb,B,W->data,t,IN,0,OUT);dt=now()-t0;if(dt<bi)bi=dt;}
		double md=0;for(int i=0;i<B*OUT;i++){double d=((float*)Y->data)[i]-o[i];if(d<0)d=-d;if(d>md)md=d;}
		printf("%s B=%d OUT=%d: ggml %.3f ms, infergate %.3f ms, ratio ggml/ig %.2f (max diff %.2g)\n",dtype_name(t),B,OUT,bg*1e3,bi*1e3,bg/bi,md);
		ggml_free(ctx);}
}

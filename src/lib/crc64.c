/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRC-64/ISO as Go's hash/crc64 computes it: tar-split stores it for every file of a layer,
 * so it runs over every byte that apply writes and that a byte-exact diff reads.
 *
 * The ISO polynomial is P = x^64 + Q with Q = x^4 + x^3 + x + 1. In the reflected form used
 * here, bit i of a word is the coefficient of x^(63-i), and multiplying by x^k is a right
 * shift by k whose lost bits are the terms of degree 64 and up. Feeding 64 message bits is
 * crc' = (crc ^ m) * x^64 mod P, and since x^64 = Q (mod P) that is v * Q with v = crc ^ m:
 * v ^ v>>1 ^ v>>3 ^ v>>4, plus the bits shifted out, o (degree 64..67), reduced once more
 * the same way; o * Q has degree below 8 and needs nothing further. No tables, a handful of
 * shifts per 8 bytes.
 */
#include <string.h>

#include "layerio.h"

/* The ISO polynomial, reversed (Go's crc64.ISO). */
#define CRC64_ISO_POLY 0xD800000000000000ULL

/* One bit step: times x, mod P. */
static inline uint64_t mul_x(uint64_t v)
{
	return v & 1 ? (v >> 1) ^ CRC64_ISO_POLY : v >> 1;
}

static inline uint64_t mul_q(uint64_t v)
{
	return v ^ v >> 1 ^ v >> 3 ^ v >> 4;
}

static inline uint64_t feed64(uint64_t crc, uint64_t m)
{
	uint64_t v = crc ^ m;
	uint64_t o = v << 63 ^ v << 61 ^ v << 60;

	return mul_q(v) ^ mul_q(o);
}

static inline uint64_t load_le64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static uint64_t crc_words(uint64_t crc, const unsigned char *p, size_t len)
{
	for (; len >= 8; p += 8, len -= 8)
		crc = feed64(crc, load_le64(p));
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = mul_x(crc);
	}
	return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <pthread.h>

/* x^n mod P, reflected. */
static uint64_t xpow_mod(unsigned n)
{
	uint64_t r = 1ULL << 63;

	while (n--)
		r = mul_x(r);
	return r;
}

/*
 * Folding with carry-less multiplies, 64 bytes a round. A 16-byte block read little-endian
 * holds, reflected, H (low half, the higher degrees) and L; moving it n bits further along
 * the message is H*x^(n+64) + L*x^n mod P. A carry-less product of two reflected halves
 * lands one degree low, hence the constants x^(n+63) and x^(n-1). What is left at the end,
 * 16 bytes congruent to the message, goes through the word step.
 */
static __m128i fold_k128, fold_k512, fold_k2048;
static bool have_clmul, have_vclmul;
static pthread_once_t clmul_once = PTHREAD_ONCE_INIT;

static void clmul_init(void)
{
	__builtin_cpu_init();
	have_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
	fold_k128 = _mm_set_epi64x((long long)xpow_mod(127), (long long)xpow_mod(191));
	fold_k512 = _mm_set_epi64x((long long)xpow_mod(511), (long long)xpow_mod(575));
	fold_k2048 = _mm_set_epi64x((long long)xpow_mod(2047), (long long)xpow_mod(2111));
	have_vclmul = have_clmul && __builtin_cpu_supports("avx512f") &&
		      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vpclmulqdq");
}

__attribute__((target("pclmul,sse4.1"))) static inline __m128i fold(__m128i x, __m128i k)
{
	return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

/* @y, 16 bytes congruent to what came before @p, then the @len bytes at @p: the CRC. */
__attribute__((target("pclmul,sse4.1"))) static uint64_t fold_tail(__m128i y,
								  const unsigned char *p,
								  size_t len)
{
	for (; len >= 16; p += 16, len -= 16)
		y = _mm_xor_si128(fold(y, fold_k128), _mm_loadu_si128((const __m128i *)p));

	unsigned char rest[16];
	_mm_storeu_si128((__m128i *)rest, y);
	return crc_words(crc_words(0, rest, sizeof(rest)), p, len);
}

__attribute__((target("pclmul,sse4.1"))) static uint64_t crc_clmul(uint64_t crc,
								  const unsigned char *p,
								  size_t len)
{
	__m128i x0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p),
				   _mm_cvtsi64_si128((long long)crc));
	__m128i x1 = _mm_loadu_si128((const __m128i *)(p + 16));
	__m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32));
	__m128i x3 = _mm_loadu_si128((const __m128i *)(p + 48));

	for (p += 64, len -= 64; len >= 64; p += 64, len -= 64) {
		x0 = _mm_xor_si128(fold(x0, fold_k512), _mm_loadu_si128((const __m128i *)p));
		x1 = _mm_xor_si128(fold(x1, fold_k512), _mm_loadu_si128((const __m128i *)(p + 16)));
		x2 = _mm_xor_si128(fold(x2, fold_k512), _mm_loadu_si128((const __m128i *)(p + 32)));
		x3 = _mm_xor_si128(fold(x3, fold_k512), _mm_loadu_si128((const __m128i *)(p + 48)));
	}
	x0 = _mm_xor_si128(fold(x0, fold_k128), x1);
	x0 = _mm_xor_si128(fold(x0, fold_k128), x2);
	x0 = _mm_xor_si128(fold(x0, fold_k128), x3);
	return fold_tail(x0, p, len);
}

#define VCLMUL_TARGET "avx512f,avx512vl,vpclmulqdq,pclmul,sse4.1"

__attribute__((target(VCLMUL_TARGET))) static inline __m512i vfold(__m512i x, __m512i k)
{
	return _mm512_xor_si512(_mm512_clmulepi64_epi128(x, k, 0x00),
				_mm512_clmulepi64_epi128(x, k, 0x11));
}

/* The same folding four blocks to a register, 256 bytes a round; @len is at least 256. */
__attribute__((target(VCLMUL_TARGET))) static uint64_t crc_vclmul(uint64_t crc,
								 const unsigned char *p,
								 size_t len)
{
	const __m512i k2048 = _mm512_broadcast_i32x4(fold_k2048);
	const __m512i k512 = _mm512_broadcast_i32x4(fold_k512);
	__m512i x0 = _mm512_xor_si512(
		_mm512_loadu_si512(p),
		_mm512_inserti32x4(_mm512_setzero_si512(), _mm_cvtsi64_si128((long long)crc), 0));
	__m512i x1 = _mm512_loadu_si512(p + 64);
	__m512i x2 = _mm512_loadu_si512(p + 128);
	__m512i x3 = _mm512_loadu_si512(p + 192);

	for (p += 256, len -= 256; len >= 256; p += 256, len -= 256) {
		x0 = _mm512_xor_si512(vfold(x0, k2048), _mm512_loadu_si512(p));
		x1 = _mm512_xor_si512(vfold(x1, k2048), _mm512_loadu_si512(p + 64));
		x2 = _mm512_xor_si512(vfold(x2, k2048), _mm512_loadu_si512(p + 128));
		x3 = _mm512_xor_si512(vfold(x3, k2048), _mm512_loadu_si512(p + 192));
	}
	x0 = _mm512_xor_si512(vfold(x0, k512), x1);
	x0 = _mm512_xor_si512(vfold(x0, k512), x2);
	x0 = _mm512_xor_si512(vfold(x0, k512), x3);
	for (; len >= 64; p += 64, len -= 64)
		x0 = _mm512_xor_si512(vfold(x0, k512), _mm512_loadu_si512(p));

	__m128i y = _mm512_extracti32x4_epi32(x0, 0);
	y = _mm_xor_si128(fold(y, fold_k128), _mm512_extracti32x4_epi32(x0, 1));
	y = _mm_xor_si128(fold(y, fold_k128), _mm512_extracti32x4_epi32(x0, 2));
	y = _mm_xor_si128(fold(y, fold_k128), _mm512_extracti32x4_epi32(x0, 3));
	return fold_tail(y, p, len);
}
#endif

uint64_t crc64_iso_update(uint64_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	crc = ~crc;
#if defined(__x86_64__) && defined(__GNUC__)
	if (len >= 128) {
		pthread_once(&clmul_once, clmul_init);
		if (have_vclmul && len >= 512)
			return ~crc_vclmul(crc, p, len);
		if (have_clmul)
			return ~crc_clmul(crc, p, len);
	}
#endif
	return ~crc_words(crc, p, len);
}

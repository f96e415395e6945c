/* SPDX-License-Identifier: Apache-2.0 */
/* A tiny TAP producer for the C unit tests: asserts print file, line and both values. */
#pragma once

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed;

/* Line-buffered output: a forked child never carries TAP lines its parent has not written. */
__attribute__((constructor)) static void tap_line_buffered(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline void tap_result(int ok, const char *file, int line, const char *what)
{
	tap_n++;
	if (!ok)
		tap_failed++;
	printf("%sok %d - %s\n", ok ? "" : "not ", tap_n, what);
	if (!ok)
		printf("# failed at %s:%d\n", file, line);
}

#define CHECK(cond) tap_result(!!(cond), __FILE__, __LINE__, #cond)

#define CHECK_INT(a, b)                                                                          \
	do {                                                                                     \
		intmax_t _a = (intmax_t)(a), _b = (intmax_t)(b);                                 \
		tap_result(_a == _b, __FILE__, __LINE__, #a " == " #b);                          \
		if (_a != _b)                                                                    \
			printf("#   left:  %jd\n#   right: %jd\n", _a, _b);                          \
	} while (0)

#define CHECK_STR(a, b)                                                                          \
	do {                                                                                     \
		const char *_a = (a), *_b = (b);                                                 \
		int _ok = _a && _b && strcmp(_a, _b) == 0;                                       \
		tap_result(_ok, __FILE__, __LINE__, #a " == " #b);                               \
		if (!_ok)                                                                        \
			printf("#   left:  '%s'\n#   right: '%s'\n", _a ? _a : "(null)",          \
			       _b ? _b : "(null)");                                              \
	} while (0)

/* Ends the test: prints the plan and exits 0 or 1. */
static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

/* Exits 77 (skipped) with a reason. */
static inline void tap_skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	exit(77);
}

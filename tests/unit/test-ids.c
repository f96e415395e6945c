/* SPDX-License-Identifier: Apache-2.0 */
/* Layer id validation: what is refused before any file is touched. */
#include <errno.h>
#include <string.h>

#include "ids.h"
#include "tap.h"
#include "whiteout.h"

int main(void)
{
	static const char *good[] = { "a", "0", "c0ffee", "a.b_c-d", "A1", "x-removingx",
				      "sha256.abc", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" };
	static const char *bad[] = { "", "-a", ".a", "_a", "a/b", "..", ".", "a b", "a\n",
				     "x-removing", "a:b", "ä", "/abs" };
	char longid[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		CHECK_INT(id_check(good[i], NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		CHECK_INT(id_check(bad[i], NULL), -EINVAL);
	CHECK_INT(id_check(NULL, NULL), -EINVAL);

	memset(longid, 'a', sizeof(longid));
	longid[255] = '\0';
	CHECK_INT(id_check(longid, NULL), 0);
	longid[255] = 'a';
	longid[256] = '\0';
	CHECK_INT(id_check(longid, NULL), -EINVAL);

	const char *why = NULL;
	CHECK_INT(id_check("a/b", &why), -EINVAL);
	CHECK(why && strstr(why, "letters"));

	CHECK(wh_is_whiteout(".wh.foo"));
	CHECK(!wh_is_whiteout("foo"));
	CHECK(wh_is_meta(WH_OPAQUE));
	CHECK_STR(wh_target(".wh.foo"), "foo");
	CHECK(wh_target(WH_OPAQUE) == NULL);
	return tap_done();
}

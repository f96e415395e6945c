/* SPDX-License-Identifier: Apache-2.0 */
/* Layer id validation. */
#include <errno.h>
#include <string.h>

#include "ids.h"

static bool id_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return !first && (c == '_' || c == '.' || c == '-');
}

bool str_has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

void id_shown(const char *id, char *buf, size_t size)
{
	size_t n = 0;

	if (size < 5)
		return;
	for (const char *p = id ? id : ""; *p && n < size - 4; p++)
		buf[n++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
	if (id && strlen(id) > n)
		buf[n++] = '.', buf[n++] = '.', buf[n++] = '.';
	buf[n] = '\0';
}

int id_check(const char *id, const char **ret_why)
{
	const char *why = NULL;

	if (!id || !*id)
		why = "is empty";
	else if (strnlen(id, STRATA_ID_MAX + 1) > STRATA_ID_MAX)
		why = "is longer than 255 bytes";
	else if (!id_char(id[0], true))
		why = "must begin with a letter or digit";
	else if (str_has_suffix(id, REMOVING_SUFFIX))
		why = "must not end in '-removing'";
	else
		for (const char *p = id + 1; *p; p++)
			if (!id_char(*p, false)) {
				why = "may hold only letters, digits, '_', '.' and '-'";
				break;
			}
	if (ret_why)
		*ret_why = why;
	return why ? -EINVAL : 0;
}

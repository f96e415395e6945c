/* SPDX-License-Identifier: Apache-2.0 */
/* Error values handed to callers of the public API. */
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "strata-private.h"

int strata_fail(struct strata_error **err, int code, const char *fmt, ...)
{
	va_list ap;

	if (code < 0)
		code = -code;
	if (code == 0)
		code = EIO;
	if (err) {
		struct strata_error *e = calloc(1, sizeof(*e));
		if (e) {
			e->code = code;
			va_start(ap, fmt);
			if (vasprintf(&e->message, fmt, ap) < 0)
				e->message = NULL;
			va_end(ap);
			if (!e->message)
				e->message = strdup(strerror(code));
			strata_error_free(*err);
			*err = e;
		}
	}
	return -code;
}

int strata_check_id(const char *op, const char *id, struct strata_error **err)
{
	const char *why;

	if (id_check(id, &why) == 0)
		return 0;
	/* The id may hold anything: quote it only as far as it is printable. */
	char shown[64];
	id_shown(id, shown, sizeof(shown));
	return strata_fail(err, EINVAL, "%s '%s': invalid layer id: %s", op, shown, why);
}

_public_ const char *strata_error_message(const struct strata_error *err)
{
	return err && err->message ? err->message : "unknown error";
}

_public_ int strata_error_code(const struct strata_error *err)
{
	return err ? err->code : 0;
}

_public_ void strata_error_free(struct strata_error *err)
{
	if (!err)
		return;
	free(err->message);
	free(err);
}

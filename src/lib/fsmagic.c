/* SPDX-License-Identifier: Apache-2.0 */
/* statfs magic numbers and the names Docker reports for them. */
#include "strata-private.h"

static const struct {
	unsigned long magic;
	const char *name;
} fs_names[] = {
	{ 0x61756673, "aufs" },     { 0x9123683E, "btrfs" },     { 0x28cd3d45, "cramfs" },
	{ 0xf15f, "ecryptfs" },     { 0x0000EF53, "extfs" },     { 0xF2F52010, "f2fs" },
	{ 0x47504653, "gpfs" },     { 0x000072b6, "jffs2" },     { 0x3153464a, "jfs" },
	{ 0x00006969, "nfs" },      { 0x858458f6, "ramfs" },     { 0x52654973, "reiserfs" },
	{ 0x0000517B, "smb" },      { 0x73717368, "squashfs" },  { 0x01021994, "tmpfs" },
	{ 0xa501fcf5, "vxfs" },     { 0x58465342, "xfs" },       { 0x2fc12fc1, "zfs" },
	{ 0x794C7630, "overlayfs" }, { 0x65735546, "fuse" },     { 0x00000000, "unsupported" },
};

const char *fsmagic_name(unsigned long magic)
{
	magic &= 0xffffffffUL;
	for (size_t i = 0; i < ARRAY_SIZE(fs_names); i++)
		if (fs_names[i].magic == magic)
			return fs_names[i].name;
	return "<unknown>";
}

/* SPDX-License-Identifier: Apache-2.0 */
/* strata-fuse internals: branches, the node table and the operations ops.c calls. */
#pragma once

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "macro.h"
#include "whiteout.h"

enum sfs_wh_format {
	SFS_WH_AUFS,
	SFS_WH_OVERLAY,
};

/* A branch: bindex 0 is the top; only bindex 0 may be writable. */
struct sfs_branch {
	char *path;  /* absolute, as given after realpath() */
	int fd;      /* O_PATH|O_DIRECTORY on the branch root */
	bool rw;     /* writable (only ever bindex 0) */
	bool wh;     /* whiteouts in it are honoured */
	unsigned fsidx; /* index of its file system among the branches', folded into st_ino */
	dev_t dev;
	struct inode_set *links; /* its hard-linked files' names, once a copy-up needed them */
};

/*
 * A node of the merged view, the FUSE nodeid. Found by (parent, name) in the table while
 * hashed; an unlinked node stays alive, unhashed, until the kernel forgets it.
 *
 * Locking: parent, name, bindex, layers and plnk change only under fs->ns_lock held for
 * writing; whoever holds it for reading may read them. nlookup and refs change under
 * fs->table_lock. A directory's listing cache is guarded by fs->dcache_lock.
 */
struct sfs_node {
	struct sfs_node *parent; /* holds a ref on it; NULL for the root */
	char *name;
	struct sfs_node *hnext;
	uint64_t nlookup; /* kernel references (LOOKUP minus FORGET) */
	uint64_t refs;    /* children and open handles */
	bool hashed;
	mode_t type;  /* S_IFMT bits */
	uint64_t ino; /* st_ino, fixed for the node's life */
	int bindex;   /* topmost branch holding it */
	/* Directories: branches whose directory of this path merges in, top first. */
	int nlayers;
	int *layers;
	/* Non-directories read through a pseudo-link (a lower hard link whose sibling was copied up). */
	char *plnk;
	/* An unlinked non-directory the kernel still uses: O_PATH on what backed it, or -1. */
	int opath_fd;
	/* Without OPEN, files are read and written by node: cached fds, see sfs_node_fd(). */
	int rfd, wfd;
	unsigned rfd_gen, wfd_gen;
	unsigned gen; /* bumped on copy-up: open handles reopen */
	uint64_t dversion; /* bumped when a directory's names change */
	struct sfs_listing *listing;
};

#define SFS_WALKERS 64
/* READDIRPLUS gives attributes for this many entries of a listing to every process */
#define SFS_ATTRS_FIRST 256

/* uidmapping=/gidmapping=: ranges of stored ids and the ids they show as (idmap.c) */
#define SFS_IDMAP_MAX 340
struct sfs_idrange {
	uint32_t stored, shown, count;
};
struct sfs_idmap {
	unsigned n; /* 0: ids show as stored */
	uint32_t overflow;
	struct sfs_idrange r[SFS_IDMAP_MAX];
};

struct sfs_fs {
	struct sfs_branch *br;
	int nbr;
	bool rw; /* br[0] is writable */
	enum sfs_wh_format wh_format;
	int work_fd;    /* scratch directory for temporaries, on the rw branch's fs */
	char *work_path;
	int plnk_fd;    /* pseudo-link directory, -1 until first needed */
	int wh_base_dfd; /* directory of the file aufs whiteouts are hard links of, or -1 */
	bool single_fs; /* every branch on one file system: inode numbers are unique as they are */
	bool is_root;
	bool no_opendir; /* answer OPENDIR with ENOSYS */
	bool no_open;    /* answer OPEN with ENOSYS: reads and writes go by node */
	bool dont_mask;  /* the kernel leaves the caller's umask to us (FUSE_CAP_DONT_MASK) */
	bool nosync;     /* -o volatile: no fsync, at copy-up or asked for */
	uint64_t init_unique; /* INIT's, until its reply is sent: see devio.c */
	uint32_t init_offered; /* the flags INIT offered */
	/* SETXATTR requests carry setxattr_flags (devio.c): not, asked by libfuse, or by us */
	enum { SFS_XATTR_EXT_NONE, SFS_XATTR_EXT_LIBFUSE, SFS_XATTR_EXT_OURS } setxattr_ext;
	bool volatile_marked; /* ... and the rw branch is marked as used so */
	double timeout;
	struct sfs_idmap uidmap, gidmap;
	int64_t squash_uid, squash_gid; /* squash_to_*: the owner every object shows, or -1 */
	bool static_nlink;              /* every directory shows a link count of 1 */
	size_t name_max; /* longest name: the top branch's, less room for ".wh." */
	struct fuse_session *se;

	pthread_rwlock_t ns_lock;
	pthread_mutex_t table_lock;
	pthread_mutex_t dcache_lock;
	pthread_mutex_t ino_lock;
	pthread_mutex_t fd_lock;
	long fd_count, fd_max; /* node fds cached, and how many may be */
	struct sfs_node root;
	struct sfs_node **table;
	size_t table_size, table_count;
	/* upper inode number -> st_ino shown, for objects that were copied up */
	uint64_t *ino_keys, *ino_vals;
	size_t ino_size, ino_count;
	struct sfs_prefetcher *prefetcher;
	/* bumped by every change to names or attributes (sfs_changed) */
	uint64_t mseq;
	pthread_cond_t ahead_cond; /* a lookahead was made (with dcache_lock) */
	/* processes seen to walk: every READDIRPLUS gives them attributes (atomic), sfs_walker() */
	pid_t walkers[SFS_WALKERS];
	uint64_t listers[SFS_WALKERS]; /* pid << 32 | st_ino: the last listing a process started */
};

/* A change to names or attributes: lookups made before it are stale. */
static inline void sfs_changed(struct sfs_fs *fs)
{
	__atomic_add_fetch(&fs->mseq, 1, __ATOMIC_RELEASE);
}

/* An open file. */
struct sfs_file {
	pthread_mutex_t lock;
	int fd;
	int old_fd; /* the lower file's, after a copy-up */
	int flags;
	unsigned gen;
	struct sfs_node *node;
};

/* A merged directory listing, shared by open handles while the directory is unchanged. */
struct sfs_dirent {
	char *name;
	uint64_t ino;
	unsigned char type; /* DT_* */
	int br;             /* the topmost branch that holds the name */
	/*
	 * For a directory: the branches below @br, in order, whose directory of the name
	 * merges into it as far as the parent's listing tells (an opaque one still ends the
	 * merge), and whether a non-directory of the name below ended them.
	 */
	int *lower;
	int nlower;
	bool lower_nondir;
	bool lower_closed; /* while the listing is built: nothing more merges */
};

/*
 * Offsets are indexes into ents: a rebuilt listing keeps the order of the one before, names
 * gone stay as holes (name NULL) and new names go to the end, so that an offset handed out
 * before a change still leads to the same place.
 */
struct sfs_listing {
	unsigned refs;
	size_t prefetched; /* entries before this one were handed to the prefetcher (atomic) */
	bool bare;         /* a READDIRPLUS gave its names without attributes (atomic) */
	uint64_t version;
	size_t n;    /* entries, holes included */
	size_t live; /* entries with a name */
	struct sfs_dirent *ents;
	struct sfs_name_index *index; /* name -> entry */
	struct sfs_lookahead *ahead;  /* lookups made for the next READDIRPLUS (dcache_lock) */
	bool ahead_busy;              /* a thread is making them */
};

/*
 * An open directory (with OPENDIR): the listing its stream reads. A read after the directory
 * changed takes the current listing, whose offsets lead where the old one's did.
 */
struct sfs_dirhandle {
	pthread_mutex_t lock;
	struct sfs_listing *l;
};

/* Result of looking a name up across branches. */
struct sfs_lookup {
	bool found;
	int bindex;
	struct stat st;
	int nlayers;
	int *layers;
	char *plnk;
	bool below; /* the name exists in a branch below the top one holding it */
};

/* idmap.c */
int sfs_idmap_parse(struct sfs_idmap *m, const char *spec, bool uid, char *err, size_t errlen);
uint32_t sfs_id_shown(const struct sfs_idmap *m, uint32_t id);
int sfs_id_stored(const struct sfs_idmap *m, uint32_t id, uint32_t *ret);
void sfs_stat_shown(const struct sfs_fs *fs, struct stat *st);
bool sfs_idmap_acl_name(const struct sfs_fs *fs, const char *name);
int sfs_idmap_acl(const struct sfs_fs *fs, const char *name, void *value, size_t size,
		  bool to_shown);

/* super.c */
int sfs_parse_branches(struct sfs_fs *fs, const char *spec, char sep, bool from_file);
int sfs_volatile_begin(struct sfs_fs *fs);
int sfs_volatile_end(struct sfs_fs *fs);
int sfs_setup(struct sfs_fs *fs, const char *brspec, const char *brfile, const char *lowerdir,
	      const char *upperdir, const char *workdir, char *err, size_t errlen);

/* inode.c */
void sfs_table_init(struct sfs_fs *fs);
struct sfs_node *sfs_node_get(struct sfs_fs *fs, fuse_ino_t ino);
fuse_ino_t sfs_node_id(struct sfs_fs *fs, struct sfs_node *node);
int sfs_node_path(struct sfs_node *node, char *buf, size_t size);
int sfs_child_path(struct sfs_node *parent, const char *name, char *buf, size_t size);
struct sfs_node *sfs_node_find(struct sfs_fs *fs, struct sfs_node *parent, const char *name);
struct sfs_node *sfs_node_find_get(struct sfs_fs *fs, struct sfs_node *parent, const char *name);
struct sfs_node *sfs_node_attach(struct sfs_fs *fs, struct sfs_node *parent, const char *name,
				 struct sfs_lookup *lk);
void sfs_node_unhash(struct sfs_fs *fs, struct sfs_node *node);
void sfs_node_move(struct sfs_fs *fs, struct sfs_node *node, struct sfs_node *newparent,
		   const char *newname);
void sfs_node_ref(struct sfs_fs *fs, struct sfs_node *node);
void sfs_node_unref(struct sfs_fs *fs, struct sfs_node *node);
void sfs_node_forget(struct sfs_fs *fs, struct sfs_node *node, uint64_t n);
int sfs_node_top(struct sfs_node *node);
uint64_t sfs_ino_of(struct sfs_fs *fs, int bindex, const struct stat *st);
void sfs_ino_remember(struct sfs_fs *fs, uint64_t upper_ino, uint64_t ino);
void sfs_ino_forget_upper(struct sfs_fs *fs, uint64_t upper_ino);
int sfs_getattr(struct sfs_fs *fs, struct sfs_node *node, struct stat *st);
void sfs_node_attr(const struct sfs_node *node, struct stat *st);
int sfs_setattr(struct sfs_fs *fs, struct sfs_node *node, struct stat *attr, int to_set,
		struct sfs_file *f, struct stat *ret_st);
int sfs_backing_at(struct sfs_fs *fs, struct sfs_node *node, int *ret_dfd, char *buf,
		   size_t size);
void sfs_lookup_clear(struct sfs_lookup *lk);
void sfs_node_pin(struct sfs_fs *fs, struct sfs_node *node);
void sfs_inval_aliases(struct sfs_fs *fs, struct sfs_node *node);

/* namei.c */
int sfs_check_name(struct sfs_fs *fs, const char *name);
int sfs_join(char *buf, size_t size, const char *dir, const char *prefix, const char *name);
int sfs_lookup_name(struct sfs_fs *fs, struct sfs_node *dir, const char *name, int from,
		    struct sfs_lookup *lk);
/*
 * @hint: NULL, or @name's entry in a current listing of @dir, which says where it is: the
 * branches above it neither hold nor hide it, and for a directory which branches below merge.
 */
int sfs_lookup(struct sfs_fs *fs, struct sfs_node *dir, const char *name,
	       const struct sfs_dirent *hint, struct fuse_entry_param *e);
/* sfs_lookup(), with @pre, if not NULL, a lookup of @name made a moment ago; it is used up */
int sfs_lookup_pre(struct sfs_fs *fs, struct sfs_node *dir, const char *name,
		   const struct sfs_dirent *hint, struct sfs_lookup *pre,
		   struct fuse_entry_param *e);
/* Where @name of @dir is, @hint as for sfs_lookup(); no node is made. */
int sfs_lookup_where(struct sfs_fs *fs, struct sfs_node *dir, const char *name,
		     const struct sfs_dirent *hint, struct sfs_lookup *lk);
bool sfs_is_whiteout_at(struct sfs_fs *fs, int bindex, const char *dirpath, const char *name);
bool sfs_is_opaque_at(struct sfs_fs *fs, int bindex, const char *path);
double sfs_attr_timeout(struct sfs_fs *fs, struct sfs_node *node, const struct stat *st);
void sfs_fill_entry(struct sfs_fs *fs, struct sfs_node *node, const struct stat *st,
		    struct fuse_entry_param *e);

/* readdir.c */
int sfs_listing_get(struct sfs_fs *fs, struct sfs_node *dir, struct sfs_listing **ret);
void sfs_listing_put(struct sfs_fs *fs, struct sfs_listing *l);
void sfs_lookahead_make(struct sfs_fs *fs, struct sfs_node *dir, struct sfs_listing *l,
			size_t from, size_t count);
struct sfs_lookahead *sfs_lookahead_take(struct sfs_fs *fs, struct sfs_listing *l, size_t from);
struct sfs_lookup *sfs_lookahead_at(struct sfs_lookahead *a, size_t i);
void sfs_lookahead_free(struct sfs_lookahead *a);
void sfs_listing_ref(struct sfs_fs *fs, struct sfs_listing *l);
void sfs_prefetch(struct sfs_fs *fs, struct sfs_node *dir, struct sfs_listing *l, size_t from,
		  size_t to);
bool sfs_walker(struct sfs_fs *fs, pid_t pid, const struct sfs_node *dir, off_t off);
void sfs_readdir_looked_up(struct sfs_fs *fs, struct sfs_node *dir, const char *name, pid_t pid);
void sfs_prefetch_stop(struct sfs_fs *fs);
/*
 * When @dir has a current listing: 1, a reference on it in *@ret_l and @name's entry in
 * *@ret_d (NULL: the merged view has no such name). 0 when there is none. Caller holds ns_lock.
 */
int sfs_listing_find(struct sfs_fs *fs, struct sfs_node *dir, const char *name,
		     struct sfs_listing **ret_l, const struct sfs_dirent **ret_d);
void sfs_dir_changed(struct sfs_fs *fs, struct sfs_node *dir);
int sfs_dir_is_empty(struct sfs_fs *fs, struct sfs_node *dir);

/* copy_up.c */
int sfs_copy_up(struct sfs_fs *fs, struct sfs_node *node, bool with_data);
int sfs_copy_up_tree(struct sfs_fs *fs, struct sfs_node *dir);
int sfs_make_temp(struct sfs_fs *fs, char *buf, size_t size);
int sfs_plnk_dir(struct sfs_fs *fs);
void sfs_plnk_open(struct sfs_fs *fs);
void sfs_plnk_key(struct sfs_fs *fs, int bindex, const struct stat *st, char *buf, size_t size);

/* dir.c */
int sfs_create_obj(struct sfs_fs *fs, struct sfs_node *dir, const char *name, mode_t mode,
		   dev_t rdev, const char *link_target, struct fuse_ctx const *ctx,
		   struct fuse_entry_param *e, int oflags, int *ret_fd);
int sfs_link(struct sfs_fs *fs, struct sfs_node *node, struct sfs_node *dir, const char *name,
	     struct fuse_entry_param *e);
int sfs_unlink(struct sfs_fs *fs, struct sfs_node *dir, const char *name, bool is_dir);
int sfs_rename(struct sfs_fs *fs, struct sfs_node *odir, const char *oname,
	       struct sfs_node *ndir, const char *nname, unsigned flags);
int sfs_whiteout(struct sfs_fs *fs, const char *dirpath, const char *name);
int sfs_readlink(struct sfs_fs *fs, struct sfs_node *node, char *buf, size_t size);

/* file.c */
int sfs_open(struct sfs_fs *fs, struct sfs_node *node, int flags, struct sfs_file **ret);
int sfs_file_from_fd(struct sfs_fs *fs, struct sfs_node *node, int fd, int flags,
		     struct sfs_file **ret);
void sfs_release(struct sfs_fs *fs, struct sfs_file *f);
int sfs_file_fd(struct sfs_fs *fs, struct sfs_file *f);
int sfs_file_fd_locked(struct sfs_fs *fs, struct sfs_file *f);
int sfs_node_fd(struct sfs_fs *fs, struct sfs_node *node, bool write, bool *ret_close);

/* xattr.c */
int sfs_getxattr(struct sfs_fs *fs, struct sfs_node *node, const char *name, char *buf,
		 size_t size);
int sfs_listxattr(struct sfs_fs *fs, struct sfs_node *node, char *buf, size_t size);
int sfs_setxattr(struct sfs_fs *fs, struct sfs_node *node, const char *name, const char *value,
		 size_t size, int flags);
int sfs_removexattr(struct sfs_fs *fs, struct sfs_node *node, const char *name);
int sfs_copy_xattrs(int src_fd, int dst_fd);
int sfs_copy_xattrs_path(const char *src, bool src_follow, const char *dst);
bool sfs_xattr_hidden(const char *name);

/* devio.c */
int sfs_devio_attach(struct sfs_fs *fs);
int sfs_devio_write_kills(fuse_ino_t ino, off_t off);
bool sfs_devio_setxattr_kills_sgid(fuse_ino_t ino);

/* ops.c */
extern const struct fuse_lowlevel_ops sfs_ops;

/* Syscalls that change a branch: one place to trace them. */
int sfs_do_mkdirat(int dfd, const char *path, mode_t mode);
int sfs_do_mknodat(int dfd, const char *path, mode_t mode, dev_t rdev);
int sfs_do_symlinkat(const char *target, int dfd, const char *path);
int sfs_do_linkat(int odfd, const char *opath, int ndfd, const char *npath);
int sfs_do_unlinkat(int dfd, const char *path, int flags);
int sfs_do_renameat(int odfd, const char *opath, int ndfd, const char *npath, unsigned flags);
int sfs_do_openat(int dfd, const char *path, int flags, mode_t mode);
int sfs_do_fchownat(int dfd, const char *path, uid_t uid, gid_t gid, int flags);
int sfs_do_fchmodat(int dfd, const char *path, mode_t mode);

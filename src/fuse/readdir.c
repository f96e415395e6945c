// SPDX-License-Identifier: Apache-2.0
/*
 * The merged listing of a directory: every branch once per name, topmost wins, whiteouts and
 * aufs metadata hidden. Built once per directory version; offsets are indexes into it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "hashset.h"
#include "sfs.h"

static size_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)h;
}

/* Index of a name in a listing: a map of entry indexes; SIZE_MAX if absent. */
struct sfs_name_index {
	size_t *slots; /* index + 1, 0 empty */
	size_t size, count;
	const struct sfs_listing *l;
};

static void index_place(struct sfs_name_index *x, size_t k)
{
	size_t j = str_hash(x->l->ents[k].name) & (x->size - 1);
	while (x->slots[j])
		j = (j + 1) & (x->size - 1);
	x->slots[j] = k + 1;
}

/* Adds entry @k of the listing (which must have a name); grows at half full. */
static int index_add(struct sfs_name_index *x, size_t k)
{
	if ((x->count + 1) * 2 > x->size) {
		size_t osize = x->size, *old = x->slots;
		x->size = osize ? osize * 2 : 64;
		if (!(x->slots = calloc(x->size, sizeof(size_t)))) {
			x->slots = old;
			x->size = osize;
			return -ENOMEM;
		}
		for (size_t j = 0; j < osize; j++)
			if (old[j])
				index_place(x, old[j] - 1);
		free(old);
	}
	index_place(x, k);
	x->count++;
	return 0;
}

static int index_build(struct sfs_name_index *x, const struct sfs_listing *l)
{
	*x = (struct sfs_name_index){ .l = l };
	for (size_t i = 0; i < l->n; i++)
		if (l->ents[i].name && index_add(x, i) < 0) {
			free(x->slots);
			x->slots = NULL;
			return -ENOMEM;
		}
	return 0;
}

static size_t index_find(const struct sfs_name_index *x, const char *name)
{
	if (!x->size)
		return SIZE_MAX;
	for (size_t j = str_hash(name) & (x->size - 1); x->slots[j]; j = (j + 1) & (x->size - 1))
		if (!strcmp(x->l->ents[x->slots[j] - 1].name, name))
			return x->slots[j] - 1;
	return SIZE_MAX;
}

static void listing_free(struct sfs_listing *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->ents[i].name);
		free(l->ents[i].lower);
	}
	if (l->index)
		free(l->index->slots);
	free(l->index);
	free(l->ents);
	sfs_lookahead_free(l->ahead);
	free(l);
}

static int listing_add(struct sfs_listing *l, size_t *cap, char *name, uint64_t ino,
		       unsigned char type, int br)
{
	if (l->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct sfs_dirent *ne = realloc(l->ents, ncap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		l->ents = ne;
		*cap = ncap;
	}
	l->ents[l->n++] = (struct sfs_dirent){ .name = name, .ino = ino, .type = type, .br = br };
	return 0;
}

struct raw_ent {
	char *name;
	ino_t ino;
	unsigned char type;
};

/* Reads one branch's part of the directory. */
static int read_layer(struct sfs_fs *fs, int b, const char *path, struct raw_ent **ret,
		      size_t *ret_n)
{
	struct raw_ent *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	int fd = openat(fs->br[b].fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		unsigned char type = de->d_type;
		if (type == DT_UNKNOWN || (type == DT_CHR && fs->br[b].wh)) {
			struct stat st;
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			type = IFTODT(st.st_mode);
			if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0) && fs->br[b].wh)
				type = DT_WHT;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct raw_ent *nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[n].name = strdup(de->d_name);
		if (!v[n].name) {
			r = -ENOMEM;
			break;
		}
		v[n].ino = de->d_ino;
		v[n].type = type;
		n++;
	}
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			free(v[i].name);
		free(v);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/*
 * Layer @i of a directory's merge list holds @v: the directories already listed from the
 * layers above learn whether layer @i merges into them. Its whiteouts (@wh) end them
 * first, as lookup sees a whiteout before the name; then a directory of the name merges,
 * anything else ends them.
 */
static int note_lower(struct sfs_listing *l, const struct sfs_name_index *x, int b,
		      const struct raw_ent *v, size_t n, const struct strset *wh)
{
	for (size_t i = 0; i < wh->cap; i++) {
		size_t k = wh->slot[i] ? index_find(x, wh->slot[i]) : SIZE_MAX;
		if (k != SIZE_MAX)
			l->ents[k].lower_closed = true;
	}
	for (size_t j = 0; j < n; j++) {
		size_t k = index_find(x, v[j].name);
		if (k == SIZE_MAX)
			continue;
		struct sfs_dirent *d = &l->ents[k];
		if (d->type != DT_DIR || d->br == b || d->lower_closed)
			continue;
		if (v[j].type != DT_DIR) {
			d->lower_nondir = true;
			d->lower_closed = true;
			continue;
		}
		int *nl = realloc(d->lower, (d->nlower + 1) * sizeof(int));
		if (!nl)
			return -ENOMEM;
		d->lower = nl;
		d->lower[d->nlower++] = b;
	}
	return 0;
}

static int listing_build(struct sfs_fs *fs, struct sfs_node *dir, struct sfs_listing **ret)
{
	char path[PATH_MAX];
	struct strset hidden = { 0 };
	struct sfs_name_index x = { 0 };
	size_t cap = 0;
	int r;

	r = sfs_node_path(dir, path, sizeof(path));
	if (r < 0)
		return r;
	struct sfs_listing *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	x.l = l;
	char *dot = strdup("."), *dotdot = strdup("..");
	r = -ENOMEM;
	if (!dot || !dotdot || listing_add(l, &cap, dot, dir->ino, DT_DIR, -1) < 0) {
		free(dot);
		free(dotdot);
		goto fail;
	}
	if (listing_add(l, &cap, dotdot, dir->parent ? dir->parent->ino : dir->ino, DT_DIR, -1) < 0) {
		free(dotdot);
		goto fail;
	}

	for (int i = 0; i < dir->nlayers; i++) {
		int b = dir->layers[i];
		struct raw_ent *v = NULL;
		struct strset wh = { 0 };
		size_t n = 0;

		r = read_layer(fs, b, path, &v, &n);
		if (r < 0)
			goto fail;
		/* a whiteout hides the name in its own branch too, as lookup sees it */
		for (size_t j = 0; j < n && r >= 0; j++) {
			const char *t = fs->br[b].wh ? wh_target(v[j].name) : NULL;
			if (!t && v[j].type == DT_WHT)
				t = v[j].name;
			if (!t)
				continue;
			r = strset_add(&hidden, t);
			if (r >= 0)
				r = strset_add(&wh, t);
		}
		/* what this layer adds to the directories of the layers above */
		if (r >= 0 && i > 0)
			r = note_lower(l, &x, b, v, n, &wh);
		strset_clear(&wh);
		for (size_t j = 0; j < n && r >= 0; j++) {
			const char *name = v[j].name;
			if (wh_is_whiteout(name) || v[j].type == DT_WHT || strset_has(&hidden, name) ||
			    index_find(&x, name) != SIZE_MAX)
				continue;
			struct stat st = { .st_ino = v[j].ino };
			r = listing_add(l, &cap, v[j].name, sfs_ino_of(fs, b, &st), v[j].type, b);
			if (r >= 0) {
				v[j].name = NULL; /* now owned by the listing */
				r = index_add(&x, l->n - 1);
			}
		}
		for (size_t j = 0; j < n; j++)
			free(v[j].name);
		free(v);
		if (r < 0)
			goto fail;
	}
	strset_clear(&hidden);
	if (!(l->index = malloc(sizeof(*l->index)))) {
		r = -ENOMEM;
		goto fail;
	}
	*l->index = x;
	l->live = l->n;
	*ret = l;
	return 0;
fail:
	free(x.slots);
	strset_clear(&hidden);
	listing_free(l);
	return r;
}

/*
 * An entry of a fresh listing into the merged one, with what it says of the directories
 * below (a lookup through the listing relies on it); names and lists stay shared with the
 * fresh listing until the merge is done.
 */
static int listing_add_entry(struct sfs_listing *l, size_t *cap, const struct sfs_dirent *e)
{
	if (listing_add(l, cap, e->name, e->ino, e->type, e->br) < 0)
		return -ENOMEM;
	struct sfs_dirent *d = &l->ents[l->n - 1];
	d->lower = e->lower;
	d->nlower = e->nlower;
	d->lower_nondir = e->lower_nondir;
	return 0;
}

/* Lays @fresh out in @old's order (see struct sfs_listing). Consumes @fresh on success. */
static int listing_merge(const struct sfs_listing *old, struct sfs_listing *fresh,
			 struct sfs_listing **ret)
{
	struct sfs_name_index x;
	size_t cap = 0;
	int r;

	/* too many holes: start over, offsets of open streams may then repeat names */
	if (old->n - old->live > 1024 && old->n - old->live > old->live) {
		*ret = fresh;
		return 0;
	}
	r = index_build(&x, fresh);
	if (r < 0)
		return r;
	struct sfs_listing *l = calloc(1, sizeof(*l));
	bool *used = calloc(fresh->n ? fresh->n : 1, sizeof(bool));
	if (!l || !used)
		goto fail;
	/* names are shared with @fresh until the end */
	for (size_t i = 0; i < old->n; i++) {
		size_t k = old->ents[i].name ? index_find(&x, old->ents[i].name) : SIZE_MAX;
		struct sfs_dirent e = { 0 };
		if (k != SIZE_MAX) {
			e = fresh->ents[k];
			used[k] = true;
		}
		if (listing_add_entry(l, &cap, &e) < 0)
			goto fail;
	}
	for (size_t k = 0; k < fresh->n; k++) {
		if (used[k])
			continue;
		if (listing_add_entry(l, &cap, &fresh->ents[k]) < 0)
			goto fail;
	}
	l->live = fresh->live;
	if (!(l->index = malloc(sizeof(*l->index))) || index_build(l->index, l) < 0)
		goto fail;
	for (size_t k = 0; k < fresh->n; k++)
		fresh->ents[k].name = NULL, fresh->ents[k].lower = NULL;
	free(used);
	free(x.slots);
	listing_free(fresh);
	*ret = l;
	return 0;
fail:
	free(used);
	free(x.slots);
	if (l) {
		free(l->index);
		free(l->ents);
	}
	free(l);
	return -ENOMEM;
}

/* The current listing of @dir, with a reference for the caller. Caller holds ns_lock. */
int sfs_listing_get(struct sfs_fs *fs, struct sfs_node *dir, struct sfs_listing **ret)
{
	struct sfs_listing *l, *old = NULL;
	int r;

	pthread_mutex_lock(&fs->dcache_lock);
	l = dir->listing;
	if (l && l->version == dir->dversion) {
		l->refs++;
		pthread_mutex_unlock(&fs->dcache_lock);
		*ret = l;
		return 0;
	}
	pthread_mutex_unlock(&fs->dcache_lock);

	r = listing_build(fs, dir, &l);
	if (r < 0)
		return r;
	pthread_mutex_lock(&fs->dcache_lock);
	old = dir->listing;
	if (old)
		old->refs++;
	pthread_mutex_unlock(&fs->dcache_lock);
	if (old) {
		struct sfs_listing *m;
		r = listing_merge(old, l, &m);
		sfs_listing_put(fs, old);
		old = NULL;
		if (r < 0) {
			listing_free(l);
			return r;
		}
		l = m;
	}
	l->version = dir->dversion;
	l->refs = 2; /* the cache's and the caller's */
	pthread_mutex_lock(&fs->dcache_lock);
	old = dir->listing;
	dir->listing = l;
	if (old && --old->refs > 0)
		old = NULL;
	pthread_mutex_unlock(&fs->dcache_lock);
	listing_free(old);
	*ret = l;
	return 0;
}

int sfs_listing_find(struct sfs_fs *fs, struct sfs_node *dir, const char *name,
		     struct sfs_listing **ret_l, const struct sfs_dirent **ret_d)
{
	struct sfs_listing *l;

	pthread_mutex_lock(&fs->dcache_lock);
	l = dir->listing;
	if (!l || l->version != dir->dversion || !l->index) {
		pthread_mutex_unlock(&fs->dcache_lock);
		return 0;
	}
	l->refs++;
	pthread_mutex_unlock(&fs->dcache_lock);
	size_t k = index_find(l->index, name);
	if (k < 2) {
		/* "." and "..": not names of the directory */
		sfs_listing_put(fs, l);
		return 0;
	}
	*ret_l = l;
	*ret_d = k == SIZE_MAX ? NULL : &l->ents[k];
	return 1;
}

void sfs_listing_ref(struct sfs_fs *fs, struct sfs_listing *l)
{
	pthread_mutex_lock(&fs->dcache_lock);
	l->refs++;
	pthread_mutex_unlock(&fs->dcache_lock);
}

void sfs_listing_put(struct sfs_fs *fs, struct sfs_listing *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&fs->dcache_lock);
	bool last = --l->refs == 0;
	pthread_mutex_unlock(&fs->dcache_lock);
	if (last)
		listing_free(l);
}

/*
 * Lookahead. READDIRPLUS answers with every entry looked up, while the listing process waits;
 * then the process makes the kernel's inodes and dentries for the entries, while we wait for
 * its next READDIRPLUS. To make the two overlap, the thread that sent a reply goes on to
 * look up the entries the next one will hold (the kernel asks at the offset where this one
 * ended), and the next reply only makes nodes of what it found. Lookups made before a change
 * through the mount (fs->mseq moved) are thrown away: the next reply looks again.
 */
#define LOOKAHEAD_MIN 64 /* entries left in a listing, below which it is not worth it */

struct sfs_lookahead {
	size_t from, to; /* entries of the listing looked up */
	uint64_t mseq;   /* fs->mseq when they were */
	struct sfs_lookahead_ent {
		bool have;
		struct sfs_lookup lk;
	} ents[];
};

void sfs_lookahead_free(struct sfs_lookahead *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->to - a->from; i++)
		if (a->ents[i].have)
			sfs_lookup_clear(&a->ents[i].lk);
	free(a);
}

/*
 * Looks up entries @from to @from + @count of @l, a listing of @dir, for the READDIRPLUS
 * that will read them. Caller holds ns_lock.
 */
void sfs_lookahead_make(struct sfs_fs *fs, struct sfs_node *dir, struct sfs_listing *l,
			size_t from, size_t count)
{
	if (from >= l->n || l->n - from < LOOKAHEAD_MIN || count == 0)
		return;
	if (count > l->n - from)
		count = l->n - from;
	struct sfs_lookahead *a = malloc(sizeof(*a) + count * sizeof(a->ents[0]));
	if (!a)
		return;
	pthread_mutex_lock(&fs->dcache_lock);
	bool busy = l->ahead_busy;
	l->ahead_busy = true;
	pthread_mutex_unlock(&fs->dcache_lock);
	if (busy) {
		free(a);
		return;
	}

	a->from = from;
	a->to = from + count;
	a->mseq = __atomic_load_n(&fs->mseq, __ATOMIC_ACQUIRE);
	bool current = l->version == dir->dversion;
	for (size_t i = 0; i < count; i++) {
		const struct sfs_dirent *d = &l->ents[from + i];
		struct sfs_lookahead_ent *ae = &a->ents[i];

		/* a name the kernel knows is answered from its node */
		ae->have = d->name && from + i >= 2 && sfs_check_name(fs, d->name) == 0 &&
			   !sfs_node_find(fs, dir, d->name) &&
			   sfs_lookup_where(fs, dir, d->name, current ? d : NULL, &ae->lk) == 0;
	}

	pthread_mutex_lock(&fs->dcache_lock);
	struct sfs_lookahead *old = l->ahead;
	l->ahead = a;
	l->ahead_busy = false;
	pthread_cond_broadcast(&fs->ahead_cond);
	pthread_mutex_unlock(&fs->dcache_lock);
	sfs_lookahead_free(old);
}

/*
 * The lookups made ahead for a READDIRPLUS reading @l from entry @from, or NULL. Caller holds
 * ns_lock; the lookahead is the caller's to free.
 */
struct sfs_lookahead *sfs_lookahead_take(struct sfs_fs *fs, struct sfs_listing *l, size_t from)
{
	struct sfs_lookahead *a = NULL, *stale = NULL;

	pthread_mutex_lock(&fs->dcache_lock);
	while (l->ahead_busy)
		pthread_cond_wait(&fs->ahead_cond, &fs->dcache_lock);
	if (l->ahead && l->ahead->mseq != __atomic_load_n(&fs->mseq, __ATOMIC_ACQUIRE)) {
		stale = l->ahead;
		l->ahead = NULL;
	} else if (l->ahead && l->ahead->from == from) {
		/* another reader of the listing, elsewhere in it, leaves it alone */
		a = l->ahead;
		l->ahead = NULL;
	}
	pthread_mutex_unlock(&fs->dcache_lock);
	sfs_lookahead_free(stale);
	return a;
}

/* The lookup of entry @i made ahead, or NULL. */
struct sfs_lookup *sfs_lookahead_at(struct sfs_lookahead *a, size_t i)
{
	if (!a || i < a->from || i >= a->to || !a->ents[i - a->from].have)
		return NULL;
	return &a->ents[i - a->from].lk;
}

/* Names in @dir changed: the next listing is built anew. Caller holds ns_lock for writing. */
void sfs_dir_changed(struct sfs_fs *fs, struct sfs_node *dir)
{
	dir->dversion++;
}

/* 1 when @dir shows nothing but "." and "..", 0 when it shows more, or -errno. */
int sfs_dir_is_empty(struct sfs_fs *fs, struct sfs_node *dir)
{
	struct sfs_listing *l;
	int r = sfs_listing_get(fs, dir, &l);

	if (r < 0)
		return r;
	r = l->live <= 2;
	sfs_listing_put(fs, l);
	return r;
}

/*
 * The prefetcher. A READDIRPLUS with attributes looks its entries up in their branches one
 * by one while the listing process waits; on a cold cache each lookup is a
 * directory search and an inode read in the branch's file system, and the lookup of a
 * subdirectory looks for an opaque marker in every branch it merges, a read of each of
 * those directories. From the first READDIRPLUS of a listing on, threads of their own do
 * the same ahead of the replies (and of the LOOKUPs of a process that stats what it
 * lists, see sfs_walker()), so that the disk serves several reads at once and the
 * replies find the branches' caches warm. What they find is thrown away, the replies look
 * again, so nothing they do can be stale.
 */
#define PREFETCH_MIN 8     /* entries left in a listing, below which it is not worth it */
#define PREFETCH_QUEUE 16  /* listings waiting; more are not prefetched */
#define PREFETCH_CHUNK 32  /* lookups a thread takes at a time */
/* Threads: a cold lookup mostly waits for the disk, and several wait at once. */
#define PREFETCH_THREADS 4

struct prefetch_job {
	struct prefetch_job *next;
	struct sfs_listing *l;
	size_t from;      /* the first entry not yet taken */
	size_t to;        /* the end of what is to be prefetched */
	unsigned active;  /* threads at work on it */
	bool queued;
	char path[];      /* the directory, relative to the branches */
};

struct sfs_prefetcher {
	struct sfs_fs *fs;
	pthread_t threads[PREFETCH_THREADS];
	unsigned nthreads;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct prefetch_job *head, *tail;
	unsigned queued;
	bool stop;
};

static void prefetch_range(struct sfs_fs *fs, const struct prefetch_job *j, size_t from,
			   size_t to)
{
	char path[PATH_MAX];

	for (size_t i = from; i < to; i++) {
		const struct sfs_dirent *d = &j->l->ents[i];
		struct stat st;
		if (!d->name || d->br < 0 || i < 2)
			continue;
		if (d->type != DT_DIR) {
			if (sfs_join(path, sizeof(path), j->path, "", d->name) == 0)
				(void)fstatat(fs->br[d->br].fd, path, &st, AT_SYMLINK_NOFOLLOW);
			continue;
		}
		/* a directory's lookup looks for an opaque marker in every branch it merges */
		if (sfs_join(path, sizeof(path), j->path, d->name, "/" WH_OPAQUE) < 0)
			continue;
		(void)fstatat(fs->br[d->br].fd, path, &st, AT_SYMLINK_NOFOLLOW);
		for (int k = 0; k < d->nlower; k++)
			(void)fstatat(fs->br[d->lower[k]].fd, path, &st, AT_SYMLINK_NOFOLLOW);
	}
}

/* With the lock held: @j leaves the queue (its last chunk is taken, or the threads stop). */
static void prefetch_dequeue(struct sfs_prefetcher *p, struct prefetch_job *j)
{
	p->head = j->next;
	if (!p->head)
		p->tail = NULL;
	j->queued = false;
	p->queued--;
}

static void *prefetch_thread(void *u)
{
	struct sfs_prefetcher *p = u;
	struct sfs_fs *fs = p->fs;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->stop)
			pthread_cond_wait(&p->cond, &p->lock);
		if (p->stop)
			break;
		struct prefetch_job *j = p->head;
		/* a chunk is about PREFETCH_CHUNK lookups: a directory costs one per branch */
		size_t from = j->from, to = from;
		for (unsigned w = 0; to < j->to && w < PREFETCH_CHUNK; to++)
			w += 1 + (j->l->ents[to].type == DT_DIR ? j->l->ents[to].nlower : 0);
		j->from = to;
		if (to == j->to)
			prefetch_dequeue(p, j);
		j->active++;
		pthread_mutex_unlock(&p->lock);
		prefetch_range(fs, j, from, to);
		pthread_mutex_lock(&p->lock);
		if (--j->active == 0 && !j->queued) {
			pthread_mutex_unlock(&p->lock);
			sfs_listing_put(fs, j->l);
			free(j);
			pthread_mutex_lock(&p->lock);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Started with the first listing to prefetch, in the server process (after it forked). */
static struct sfs_prefetcher *prefetcher_get(struct sfs_fs *fs)
{
	static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
	struct sfs_prefetcher *p = __atomic_load_n(&fs->prefetcher, __ATOMIC_ACQUIRE);

	if (p)
		return p;
	pthread_mutex_lock(&start_lock);
	p = fs->prefetcher;
	if (!p && (p = calloc(1, sizeof(*p)))) {
		p->fs = fs;
		pthread_mutex_init(&p->lock, NULL);
		pthread_cond_init(&p->cond, NULL);
		while (p->nthreads < PREFETCH_THREADS &&
		       pthread_create(&p->threads[p->nthreads], NULL, prefetch_thread, p) == 0)
			p->nthreads++;
		if (p->nthreads == 0)
			p->stop = true; /* nothing is ever queued then */
		__atomic_store_n(&fs->prefetcher, p, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&start_lock);
	return p;
}

/*
 * Entries @from to @to of @l, a listing of @dir, are to be prefetched, those not handed over
 * before, where there are enough of them. Caller holds ns_lock.
 */
void sfs_prefetch(struct sfs_fs *fs, struct sfs_node *dir, struct sfs_listing *l, size_t from,
		  size_t to)
{
	char dirpath[PATH_MAX];
	size_t done = __atomic_load_n(&l->prefetched, __ATOMIC_RELAXED);

	if (to > l->n)
		to = l->n;
	do {
		if (from < done)
			from = done;
		if (from >= to || to - from < PREFETCH_MIN)
			return;
	} while (!__atomic_compare_exchange_n(&l->prefetched, &done, to, false, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	if (sfs_node_path(dir, dirpath, sizeof(dirpath)) < 0)
		return;
	struct sfs_prefetcher *p = prefetcher_get(fs);
	size_t len = strlen(dirpath) + 1;
	struct prefetch_job *j;
	if (!p || !(j = calloc(1, sizeof(*j) + len)))
		return;
	j->l = l;
	j->from = from;
	j->to = to;
	j->queued = true;
	memcpy(j->path, dirpath, len);
	pthread_mutex_lock(&p->lock);
	if (p->stop || p->queued >= PREFETCH_QUEUE) {
		pthread_mutex_unlock(&p->lock);
		free(j);
		return;
	}
	sfs_listing_ref(fs, l);
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/*
 * Attributes in READDIRPLUS. An entry's attributes cost a lookup in its branch (on a cold
 * cache a directory search and an inode read from disk), and in the listing process an
 * inode and a dentry the kernel makes for it: a listing that wants the names alone (ls -f,
 * a glob, a program's readdir) would pay several times what its names cost. A reply may
 * leave an entry's attributes out, and the kernel then makes nothing for it. So the first
 * SFS_ATTRS_FIRST entries of a listing come with them (most directories are all there),
 * the later ones only for a process that walks: one that starts to list a second directory
 * (find, du, tar go down a tree; a process that lists names alone seldom lists many), or
 * one seen to look up the entries of a listing it read without them (ls -l stats as it
 * reads, and is seen to at once). Left out: a process that lists one big directory whole
 * before it stats its entries (du or find of that directory alone): it looks them up one
 * LOOKUP an entry, with the prefetcher going ahead of them.
 */
static unsigned walker_slot(pid_t pid)
{
	return ((uint32_t)pid * 2654435761u) >> 26; /* SFS_WALKERS == 64 */
}

/* Whether @pid was seen to walk. */
static bool is_walker(struct sfs_fs *fs, pid_t pid)
{
	return __atomic_load_n(&fs->walkers[walker_slot(pid)], __ATOMIC_RELAXED) == pid;
}

/*
 * Whether process @pid, which reads @dir from @off, walks. The start of a listing is
 * noted: a process starting to list another directory than its last one walks. A caller
 * outside the server's pid namespace comes as pid 0, which walks (walkers[] starts zeroed):
 * such callers cannot be told apart.
 */
bool sfs_walker(struct sfs_fs *fs, pid_t pid, const struct sfs_node *dir, off_t off)
{
	unsigned k = walker_slot(pid);

	if (is_walker(fs, pid))
		return true;
	if (off != 0)
		return false;
	uint64_t was = __atomic_exchange_n(&fs->listers[k],
					   (uint64_t)(uint32_t)pid << 32 | (uint32_t)dir->ino,
					   __ATOMIC_RELAXED);
	if ((pid_t)(was >> 32) != pid || (uint32_t)was == (uint32_t)dir->ino)
		return false;
	__atomic_store_n(&fs->walkers[k], pid, __ATOMIC_RELAXED);
	return true;
}

/*
 * @name was found in @dir by a LOOKUP of process @pid: if the listing of @dir gave names
 * without attributes, @pid walks and stats. At its second such lookup, the entries given
 * without attributes are prefetched, all of them: fts (find, du) looks them up in the
 * order of their inode numbers, not the listing's. A single lookup after a listing of
 * names alone prefetches nothing. Caller holds ns_lock.
 */
void sfs_readdir_looked_up(struct sfs_fs *fs, struct sfs_node *dir, const char *name, pid_t pid)
{
	struct sfs_listing *l;
	const struct sfs_dirent *d;

	/* most lookups are in directories whose listings gave every attribute, if any */
	pthread_mutex_lock(&fs->dcache_lock);
	bool bare = dir->listing && __atomic_load_n(&dir->listing->bare, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&fs->dcache_lock);
	if (!bare || !sfs_listing_find(fs, dir, name, &l, &d))
		return;
	if (d && (size_t)(d - l->ents) >= SFS_ATTRS_FIRST &&
	    __atomic_load_n(&l->bare, __ATOMIC_RELAXED)) { /* the listing may have been replaced */
		if (is_walker(fs, pid))
			sfs_prefetch(fs, dir, l, SFS_ATTRS_FIRST, l->n);
		else
			__atomic_store_n(&fs->walkers[walker_slot(pid)], pid, __ATOMIC_RELAXED);
	}
	sfs_listing_put(fs, l);
}

/* At unmount: the threads end, the listings they held are let go. */
void sfs_prefetch_stop(struct sfs_fs *fs)
{
	struct sfs_prefetcher *p = fs->prefetcher;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	/* a job a thread was at when it stopped is still queued: the threads free only dequeued ones */
	while (p->head) {
		struct prefetch_job *j = p->head;
		prefetch_dequeue(p, j);
		sfs_listing_put(fs, j->l);
		free(j);
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
	fs->prefetcher = NULL;
}

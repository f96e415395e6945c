/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Writing a layer's regular files on worker threads while the tar is parsed:
 * unpacking is syscalls (create, write, chown, chmod, utimes, close per file),
 * and the kernel runs those of different files on different cores.
 */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "fsutil.h"
#include "layerio.h"

/* Bounds on what is queued, so that memory stays small whatever the layer. */
#define POOL_MAX_JOBS 512
#define POOL_MAX_BYTES (16 << 20)
#define POOL_MAX_THREADS 8
/*
 * Jobs pass in batches, and a waiting thread is woken only when there is enough for it to
 * do: every wake-up is a futex call, which costs about as much as a file's own syscalls.
 */
#define POOL_BATCH 16
#define POOL_TAKE 8

struct fp_dir *fp_dir_new(int fd)
{
	struct fp_dir *d = malloc(sizeof(*d));
	if (!d)
		return NULL;
	d->fd = fd;
	d->refs = 1;
	return d;
}

struct fp_dir *fp_dir_ref(struct fp_dir *d)
{
	__atomic_add_fetch(&d->refs, 1, __ATOMIC_RELAXED);
	return d;
}

void fp_dir_unref(struct fp_dir *d)
{
	if (d && __atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		close(d->fd);
		free(d);
	}
}

void fp_job_free(struct fp_job *j)
{
	if (!j)
		return;
	fp_dir_unref(j->dir);
	for (size_t i = 0; i < j->n_xattrs; i++) {
		free(j->xattrs[i].name);
		free(j->xattrs[i].value);
	}
	free(j->xattrs);
	free(j);
}

struct file_pool {
	pthread_t threads[POOL_MAX_THREADS];
	unsigned n_threads;
	pthread_mutex_t lock;
	pthread_cond_t work;  /* a job was queued, or stop */
	pthread_cond_t room;  /* a job was taken or finished */
	struct fp_job *head, *tail;
	size_t queued, queued_bytes;
	unsigned idle;        /* workers waiting for work */
	bool want_room;       /* the parsing thread waits for the queue to drop to half */
	bool want_empty;      /* ... for it to empty */
	bool stop;
	struct fp_job *batch_head, *batch_tail; /* the parsing thread's, not yet queued */
	size_t batch_n, batch_bytes;
	int error;            /* the first failure, -errno */
	char *error_name;
	const char *error_what;
};

/* Creates, fills and describes one file; on failure says what failed in *@what. */
static int run_job(struct fp_job *j, const char **what)
{
	/*
	 * The parsing thread queues a file only where nothing is: something there
	 * is another entry's, and replacing it here would race with its writer.
	 */
	_cleanup_close_ int fd = openat(j->dir->fd, j->base,
					O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, j->create_mode);
	if (fd < 0) {
		*what = errno == EEXIST ? "is already there" : "cannot create";
		return -errno;
	}
	int r = write_all(fd, j->data, j->len);
	if (r < 0) {
		*what = "cannot be written";
		return r;
	}
	struct stat st;
	bool chown = chown_due(fd, &st, j->uid, j->gid);
	if (chown && fchown(fd, j->uid, j->gid) < 0) {
		*what = "cannot change owner";
		return -errno;
	}
	for (size_t i = 0; i < j->n_xattrs; i++)
		if (fsetxattr(fd, j->xattrs[i].name, j->xattrs[i].value, j->xattrs[i].size, 0) < 0 &&
		    errno != ENOTSUP && errno != EPERM) {
			*what = "cannot set an xattr";
			return -errno;
		}
	/* a chown drops the setuid and setgid bits: they are put back */
	if ((chown || (st.st_mode & 07777) != j->mode) && fchmod(fd, j->mode) < 0) {
		*what = "cannot change mode";
		return -errno;
	}
	if (futimens(fd, j->ts) < 0) {
		*what = "cannot set times";
		return -errno;
	}
	return 0;
}

/* With the lock held: the queue emptied or dropped to half, for a parsing thread that waits. */
static void wake_producer(struct file_pool *p)
{
	if ((p->want_empty && p->queued == 0) ||
	    (p->want_room && p->queued <= POOL_MAX_JOBS / 2 &&
	     p->queued_bytes <= POOL_MAX_BYTES / 2) ||
	    ((p->want_room || p->want_empty) && p->error)) {
		p->want_room = p->want_empty = false;
		pthread_cond_broadcast(&p->room);
	}
}

static void *worker(void *u)
{
	struct file_pool *p = u;
	struct fp_job *mine[POOL_TAKE];

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->stop) {
			p->idle++;
			pthread_cond_wait(&p->work, &p->lock);
			p->idle--;
		}
		if (!p->head)
			break;
		/* a share of what is queued, so that the other workers have theirs */
		size_t n = 0, share = p->queued / p->n_threads + 1;
		while (p->head && n < POOL_TAKE && n < share) {
			mine[n++] = p->head;
			p->head = p->head->next;
		}
		if (!p->head)
			p->tail = NULL;
		bool skip = p->error != 0;
		pthread_mutex_unlock(&p->lock);

		const char *what = NULL;
		int r = 0;
		size_t bytes = 0, failed = n;
		for (size_t i = 0; i < n; i++) {
			bytes += mine[i]->len;
			if (!skip && r == 0 && (r = run_job(mine[i], &what)) < 0)
				failed = i;
		}

		pthread_mutex_lock(&p->lock);
		if (r < 0 && !p->error) {
			p->error = r;
			p->error_what = what;
			p->error_name = strdup(mine[failed]->name);
		}
		p->queued -= n;
		p->queued_bytes -= bytes;
		wake_producer(p);
		pthread_mutex_unlock(&p->lock);
		for (size_t i = 0; i < n; i++)
			fp_job_free(mine[i]);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int file_pool_new(unsigned threads, struct file_pool **ret)
{
	struct file_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	if (threads > POOL_MAX_THREADS)
		threads = POOL_MAX_THREADS;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->room, NULL);
	for (; p->n_threads < threads; p->n_threads++)
		if (pthread_create(&p->threads[p->n_threads], NULL, worker, p) != 0)
			break;
	if (p->n_threads == 0) {
		file_pool_free(p);
		return -EAGAIN;
	}
	*ret = p;
	return 0;
}

/* Queues the parsing thread's batch, once there is room for it. The first job failure. */
static int flush_batch(struct file_pool *p)
{
	int r;

	pthread_mutex_lock(&p->lock);
	while (!p->error && p->queued > 0 &&
	       (p->queued + p->batch_n > POOL_MAX_JOBS ||
		p->queued_bytes + p->batch_bytes > POOL_MAX_BYTES)) {
		p->want_room = true;
		pthread_cond_wait(&p->room, &p->lock);
	}
	r = p->error;
	if (r == 0 && p->batch_head) {
		if (p->tail)
			p->tail->next = p->batch_head;
		else
			p->head = p->batch_head;
		p->tail = p->batch_tail;
		p->queued += p->batch_n;
		p->queued_bytes += p->batch_bytes;
		p->batch_head = p->batch_tail = NULL;
		p->batch_n = p->batch_bytes = 0;
		if (p->idle > 1)
			pthread_cond_broadcast(&p->work);
		else if (p->idle)
			pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* Jobs not queued: the apply has failed or is done. */
static void drop_batch(struct file_pool *p)
{
	while (p->batch_head) {
		struct fp_job *j = p->batch_head;
		p->batch_head = j->next;
		fp_job_free(j);
	}
	p->batch_tail = NULL;
	p->batch_n = p->batch_bytes = 0;
}

int file_pool_push(struct file_pool *p, struct fp_job *j)
{
	j->next = NULL;
	if (p->batch_tail)
		p->batch_tail->next = j;
	else
		p->batch_head = j;
	p->batch_tail = j;
	p->batch_n++;
	p->batch_bytes += j->len;
	if (p->batch_n < POOL_BATCH)
		return 0;
	int r = flush_batch(p);
	if (r < 0)
		drop_batch(p);
	return r;
}

int file_pool_drain(struct file_pool *p)
{
	int r = flush_batch(p);

	if (r < 0) {
		drop_batch(p);
		return r;
	}
	pthread_mutex_lock(&p->lock);
	/* after a failure too: the workers skip what is left, and are done with the layer */
	while (p->queued > 0) {
		p->want_empty = true;
		pthread_cond_wait(&p->room, &p->lock);
	}
	r = p->error;
	pthread_mutex_unlock(&p->lock);
	return r;
}

int file_pool_error(struct file_pool *p, const char **ret_name, const char **ret_what)
{
	pthread_mutex_lock(&p->lock);
	int r = p->error;
	if (ret_name)
		*ret_name = p->error_name ? p->error_name : "";
	if (ret_what)
		*ret_what = p->error_what ? p->error_what : "failed";
	pthread_mutex_unlock(&p->lock);
	return r;
}

void file_pool_free(struct file_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	drop_batch(p);
	/* Jobs not started are dropped: the apply has failed or is done. */
	while (p->head) {
		struct fp_job *j = p->head;
		p->head = j->next;
		fp_job_free(j);
	}
	p->tail = NULL;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->room);
	free(p->error_name);
	free(p);
}

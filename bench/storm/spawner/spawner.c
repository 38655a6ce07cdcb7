/*
 * spawner: the exec storm's load generator (bench/storm compiles it with gcc
 * and runs it). Go's ForkExec tops out near 260 execs/s on a small VM; a
 * posix_spawn (clone(CLONE_VM|CLONE_VFORK) in glibc) from a few threads
 * reaches several thousand.
 *
 *   spawner RATE WORKERS DURATION_MS EVERY DIR RUNID TRUE WORKLOAD
 *
 * WORKLOAD says what every unmarked spawn runs:
 *   static  TRUE, the storm's static, libc-free spawner/true.c;
 *   true    /bin/true, dynamically linked, as every program a host runs;
 *   mix     in turn: /bin/true; env true; sh -c 'date; id -u'; a
 *           three-stage sh pipeline (seq | tr | wc); the script
 *           DIR/storm-script.sh (#!/bin/sh, runs /bin/true); bash -c
 *           '/bin/true; env true'. Several parents (the spawner, sh, bash,
 *           env, the script), 16 execs per round of 6 spawns.
 * RATE is execs per second (each spawn counts as the execs it makes), 0
 * flat out. Exec i is due at start + i/RATE on
 * CLOCK_MONOTONIC and a worker sleeps until then (TIMER_ABSTIME), so the
 * workers share one absolute schedule and a late exec does not shift the
 * ones after it. Every EVERYth exec runs `base64 --decode DIR/ewmRUNIDxI`
 * instead of /bin/true; just before spawning it the spawner prints
 *
 *   mark ewmRUNIDxI UNIX_NANOS
 *
 * and at the end one line
 *
 *   done EXECS FAILED ENCODERS ELAPSED_NANOS
 *
 * where EXECS counts the execs of the spawns that completed (a mix spawn
 * makes several).
 *
 * where ELAPSED runs from the start to the last completion.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double rate;
static long every;
static const char *dir, *runid, *true_path, *workload;
static char script_path[4096];

/* One spawn of a workload: the program, its argv, and how many execs it
 * makes (the spawn's own and its children's). */
struct job {
	const char *prog;
	char *argv[8];
	int execs;
};

#define MIX_JOBS 6
static struct job mix[MIX_JOBS] = {
	{"/bin/true", {"true", NULL}, 1},
	{"/usr/bin/env", {"env", "true", NULL}, 2},
	{"/bin/sh", {"sh", "-c", "date >/dev/null; id -u >/dev/null", NULL}, 3},
	{"/bin/sh", {"sh", "-c", "seq 1 20 | tr 1 2 | wc -l >/dev/null", NULL}, 4},
	{script_path, {"storm-script.sh", NULL}, 2},
	{"/bin/bash", {"bash", "-c", "/bin/true; env true", NULL}, 4},
};
static long long mix_prefix[MIX_JOBS + 1]; /* execs before job k of a round */

/* slot is the index of spawn i's first exec in the schedule. */
static long long slot(long long i) {
	if (strcmp(workload, "mix") != 0)
		return i;
	return i / MIX_JOBS * mix_prefix[MIX_JOBS] + mix_prefix[i % MIX_JOBS];
}
static long long start_ns, end_ns;
static atomic_llong next_i, execs, failed, encoders, last_ns;
static posix_spawn_file_actions_t actions;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

static long long now_ns(clockid_t c) {
	struct timespec ts;
	clock_gettime(c, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until(long long due) {
	struct timespec ts = {.tv_sec = due / 1000000000LL, .tv_nsec = due % 1000000000LL};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
	}
}

static void *worker(void *arg) {
	(void)arg;
	char path[4096];
	char *true_argv[] = {"true", NULL};
	char *b64_argv[] = {"base64", "--decode", path, NULL};
	/* The shells and env search PATH; Debian's default, less the
	 * /usr/local directories that hold nothing here. */
	char *env[] = {"PATH=/usr/bin:/bin", NULL};
	for (;;) {
		long long i = atomic_fetch_add(&next_i, 1);
		if (rate > 0) {
			long long due = start_ns + (long long)((double)slot(i) / rate * 1e9);
			if (due > end_ns || now_ns(CLOCK_MONOTONIC) > end_ns)
				return NULL;
			sleep_until(due);
		} else if (now_ns(CLOCK_MONOTONIC) > end_ns) {
			return NULL;
		}
		const char *prog = true_path;
		char **argv = true_argv;
		int n = 1;
		if (strcmp(workload, "true") == 0) {
			prog = "/bin/true";
		} else if (strcmp(workload, "mix") == 0) {
			struct job *j = &mix[i % MIX_JOBS];
			prog = j->prog;
			argv = j->argv;
			n = j->execs;
		}
		int marked = every > 0 && i % every == 0;
		if (marked) {
			snprintf(path, sizeof path, "%s/ewm%sx%lld", dir, runid, i);
			prog = "/usr/bin/base64";
			argv = b64_argv;
			n = 1;
			pthread_mutex_lock(&out_mu);
			printf("mark ewm%sx%lld %lld\n", runid, i, now_ns(CLOCK_REALTIME));
			fflush(stdout);
			pthread_mutex_unlock(&out_mu);
		}
		pid_t pid;
		if (posix_spawn(&pid, prog, &actions, NULL, argv, env) != 0) {
			atomic_fetch_add(&failed, 1);
			continue;
		}
		int ws;
		while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
		}
		atomic_fetch_add(&execs, n);
		if (marked)
			atomic_fetch_add(&encoders, 1);
		atomic_store(&last_ns, now_ns(CLOCK_MONOTONIC));
	}
}

int main(int argc, char **argv) {
	if (argc != 9) {
		fprintf(stderr, "usage: spawner RATE WORKERS DURATION_MS EVERY DIR RUNID TRUE WORKLOAD\n");
		return 2;
	}
	rate = atof(argv[1]);
	int workers = atoi(argv[2]);
	long long duration_ms = atoll(argv[3]);
	every = atol(argv[4]);
	dir = argv[5];
	runid = argv[6];
	true_path = argv[7];
	workload = argv[8];
	if (strcmp(workload, "static") != 0 && strcmp(workload, "true") != 0 && strcmp(workload, "mix") != 0) {
		fprintf(stderr, "spawner: workload %s: want static, true or mix\n", workload);
		return 2;
	}
	snprintf(script_path, sizeof script_path, "%s/storm-script.sh", dir);
	for (int k = 0; k < MIX_JOBS; k++)
		mix_prefix[k + 1] = mix_prefix[k] + mix[k].execs;
	if (workers < 1 || workers > 256 || duration_ms <= 0) {
		fprintf(stderr, "spawner: bad arguments\n");
		return 2;
	}
	/* The children's stdin, stdout and stderr are /dev/null. */
	posix_spawn_file_actions_init(&actions);
	for (int fd = 0; fd < 3; fd++)
		posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0);
	start_ns = now_ns(CLOCK_MONOTONIC);
	end_ns = start_ns + duration_ms * 1000000LL;
	pthread_t th[256];
	for (int w = 0; w < workers; w++)
		if (pthread_create(&th[w], NULL, worker, NULL) != 0) {
			perror("spawner: pthread_create");
			return 1;
		}
	for (int w = 0; w < workers; w++)
		pthread_join(th[w], NULL);
	long long elapsed = atomic_load(&last_ns);
	elapsed = elapsed > 0 ? elapsed - start_ns : 0;
	printf("done %lld %lld %lld %lld\n", (long long)atomic_load(&execs), (long long)atomic_load(&failed),
	       (long long)atomic_load(&encoders), elapsed);
	return 0;
}

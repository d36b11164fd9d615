/* cmd_bpf.c - `inferctl bpf attach|detach`: loads bpf/inferd.bpf.c (its
 * generated skeleton), attaches every program to the USDT probe of the
 * same name in a running inferd, pins the maps and links under
 * /sys/fs/bpf/inferd/ (mounting bpffs when needed) and exits; the probes
 * keep counting with no loader running. Also the map reader of obs.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "cmds.h"
#include "obs.h"

#if INFERD_HAVE_BPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

/* The generated skeleton embeds the object file as one long string. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
#pragma GCC diagnostic ignored "-Wpedantic"
#include "inferd.skel.h"
#pragma GCC diagnostic pop
#endif

#if INFERD_HAVE_BPF

bool obs_built_with_bpf(void)
{
    return true;
}

static int obs_map_open(const char *dir, const char *name)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return -ENAMETOOLONG;
    int fd = bpf_obj_get(path);
    return fd < 0 ? -errno : fd;
}

int obs_bpf_read(const char *dir, struct obs_bpf *out)
{
    memset(out, 0, sizeof *out);
    int hf = obs_map_open(dir, "hists");
    if (hf < 0)
        return hf;
    int cf = obs_map_open(dir, "counters");
    if (cf < 0) {
        close(hf);
        return cf;
    }
    int rc = 0;
    for (uint32_t k = 0; k < INFERD_H_COUNT && !rc; k++)
        if (bpf_map_lookup_elem(hf, &k, &out->h[k]))
            rc = -errno;
    for (uint32_t k = 0; k < INFERD_C_COUNT && !rc; k++) {
        unsigned long long v = 0;
        if (bpf_map_lookup_elem(cf, &k, &v))
            rc = -errno;
        out->c[k] = v;
    }
    close(hf);
    close(cf);
    return rc;
}

static int bpf_quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    if (level == LIBBPF_WARN)
        return vfprintf(stderr, fmt, ap);
    return 0;
}

/* bpffs at /sys/fs/bpf (mounted when it is not). */
static int bpf_fs_ensure(void)
{
    struct statfs sf;
    if (statfs("/sys/fs/bpf", &sf) == 0 && sf.f_type == 0xcafe4a11 /* BPF_FS_MAGIC */)
        return 0;
    if (mkdir("/sys/fs/bpf", 0700) && errno != EEXIST)
        return -errno;
    if (mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL))
        return -errno;
    return 0;
}

/* Removes what is pinned in dir, then dir. Returns the number removed or
 * -errno. */
static int bpf_unpin_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int n = 0;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < sizeof path &&
            unlink(path) == 0)
            n++;
    }
    closedir(d);
    if (rmdir(dir))
        return -errno;
    return n;
}

/* Pins every BPF link fd this process holds (the per-location uprobe links
 * under libbpf's USDT links) as dir/link-FD. Returns how many or -errno. */
static int bpf_pin_links(const char *dir)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -errno;
    int n = 0, rc = 0;
    struct dirent *e;
    char path[PATH_MAX], target[64];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len < 0)
            continue;
        target[len] = 0;
        if (strcmp(target, "anon_inode:bpf_link"))
            continue;
        int fd = atoi(e->d_name);
        snprintf(path, sizeof path, "%s/link-%d", dir, fd);
        if (bpf_obj_pin(fd, path)) {
            rc = -errno;
            break;
        }
        n++;
    }
    closedir(d);
    return rc ? rc : n;
}

/* The pid of the only process named inferd, 0 if none, -EEXIST if several. */
static long bpf_find_inferd(void)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    long found = 0;
    struct dirent *e;
    char path[PATH_MAX], comm[32];
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/comm", pid);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        bool match = fgets(comm, sizeof comm, f) && !strcmp(comm, "inferd\n");
        fclose(f);
        if (match) {
            if (found) {
                found = -EEXIST;
                break;
            }
            found = pid;
        }
    }
    closedir(d);
    return found;
}

static int bpf_attach(int argc, char **argv)
{
    static const char usage[] =
        "usage: inferctl bpf attach [--pid PID | --binary PATH] [--pin-dir DIR] [--verbose]\n"
        "  Attaches the programs to a running inferd's USDT probes (--pid: that\n"
        "  process; --binary: every process of that executable; neither: the only\n"
        "  running inferd) and pins maps and links under DIR (" OBS_PIN_DIR ").\n";
    enum { O_PID = 256, O_BIN, O_DIR, O_VERBOSE, O_HELP };
    static const struct option opts[] = {
        {"pid", required_argument, 0, O_PID},     {"binary", required_argument, 0, O_BIN},
        {"pin-dir", required_argument, 0, O_DIR}, {"verbose", no_argument, 0, O_VERBOSE},
        {"help", no_argument, 0, O_HELP},         {0, 0, 0, 0},
    };
    long pid = -1;
    const char *binary = NULL, *dir = OBS_PIN_DIR;
    bool verbose = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_PID: {
            char *end;
            pid = strtol(optarg, &end, 10);
            if (*end || pid <= 0) {
                fprintf(stderr, "inferctl bpf attach: bad --pid '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case O_BIN: binary = optarg; break;
        case O_DIR: dir = optarg; break;
        case O_VERBOSE: verbose = true; break;
        case O_HELP: fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc || (pid > 0 && binary)) {
        fputs(usage, stderr);
        return 2;
    }
    if (pid < 0 && !binary) {
        pid = bpf_find_inferd();
        if (pid <= 0) {
            fprintf(stderr, "inferctl bpf attach: %s; give --pid or --binary\n",
                    pid ? "several inferd processes run" : "no running inferd");
            return 1;
        }
    }
    char exe[PATH_MAX];
    if (pid > 0) {
        char link[64];
        snprintf(link, sizeof link, "/proc/%ld/exe", pid);
        ssize_t n = readlink(link, exe, sizeof exe - 1);
        if (n < 0) {
            fprintf(stderr, "inferctl bpf attach: %s: %s\n", link, strerror(errno));
            return 1;
        }
        exe[n] = 0;
    } else if (!realpath(binary, exe)) {
        fprintf(stderr, "inferctl bpf attach: %s: %s\n", binary, strerror(errno));
        return 1;
    }
    if (!verbose)
        libbpf_set_print(bpf_quiet_print);

    int rc = bpf_fs_ensure();
    if (rc) {
        fprintf(stderr, "inferctl bpf attach: cannot mount bpffs on /sys/fs/bpf: %s\n",
                strerror(-rc));
        return 1;
    }
    if (mkdir(dir, 0700)) {
        fprintf(stderr, "inferctl bpf attach: %s: %s%s\n", dir, strerror(errno),
                errno == EEXIST ? " (already attached? inferctl bpf detach first)" : "");
        return 1;
    }
    struct bpf_link *links[32] = {0};
    size_t n_links = 0;
    struct inferd_bpf *skel = inferd_bpf__open_and_load();
    if (!skel) {
        rc = -errno;
        fprintf(stderr, "inferctl bpf attach: loading the programs: %s\n", strerror(-rc));
        goto out;
    }
    struct bpf_program *prog;
    bpf_object__for_each_program(prog, skel->obj)
    {
        if (n_links == sizeof links / sizeof links[0]) {
            rc = -E2BIG;
            goto out;
        }
        const char *name = bpf_program__name(prog);
        links[n_links] = bpf_program__attach_usdt(prog, pid > 0 ? (pid_t)pid : -1, exe,
                                                  "inferd", name, NULL);
        if (!links[n_links]) {
            rc = -errno;
            fprintf(stderr, "inferctl bpf attach: probe inferd:%s in %s: %s\n", name, exe,
                    strerror(-rc));
            goto out;
        }
        n_links++;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/hists", dir);
    if ((rc = bpf_map__pin(skel->maps.hists, path)) == 0) {
        snprintf(path, sizeof path, "%s/counters", dir);
        rc = bpf_map__pin(skel->maps.counters, path);
    }
    int n_pinned = rc ? rc : bpf_pin_links(dir);
    if (n_pinned <= 0) {
        rc = n_pinned ? n_pinned : -ENOENT;
        fprintf(stderr, "inferctl bpf attach: pinning in %s: %s\n", dir, strerror(-rc));
        goto out;
    }
    rc = 0;
    printf("attached %zu probes (%d locations) to %s", n_links, n_pinned, exe);
    if (pid > 0)
        printf(" (pid %ld)", pid);
    printf("; maps and links pinned in %s\n", dir);
out:
    for (size_t i = 0; i < n_links; i++)
        bpf_link__destroy(links[i]);
    inferd_bpf__destroy(skel);
    if (rc)
        bpf_unpin_dir(dir);
    if ((rc == -EPERM || rc == -EACCES) && geteuid() != 0)
        fprintf(stderr, "inferctl bpf attach: attaching uprobes needs root (CAP_SYS_ADMIN)\n");
    return rc ? 1 : 0;
}

static int bpf_detach(int argc, char **argv)
{
    const char *dir = OBS_PIN_DIR;
    if (argc == 3 && !strcmp(argv[1], "--pin-dir"))
        dir = argv[2];
    else if (argc != 1) {
        fprintf(stderr, "usage: inferctl bpf detach [--pin-dir DIR]\n");
        return 2;
    }
    int n = bpf_unpin_dir(dir);
    if (n < 0) {
        fprintf(stderr, "inferctl bpf detach: %s: %s\n", dir, strerror(-n));
        return 1;
    }
    printf("detached: removed %d pinned objects and %s\n", n, dir);
    return 0;
}

#else

bool obs_built_with_bpf(void)
{
    return false;
}

int obs_bpf_read(const char *dir, struct obs_bpf *out)
{
    (void)dir;
    memset(out, 0, sizeof *out);
    return -ENOTSUP;
}

#endif

int cmd_bpf(int argc, char **argv)
{
    static const char usage[] = "usage: inferctl bpf attach [--pid PID | --binary PATH] [--pin-dir DIR]\n"
                                "       inferctl bpf detach [--pin-dir DIR]\n";
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "attach") && strcmp(argv[1], "detach")) {
        fprintf(stderr, "inferctl bpf: unknown subcommand '%s'\n%s", argv[1], usage);
        return 2;
    }
#if INFERD_HAVE_BPF
    if (!strcmp(argv[1], "attach"))
        return bpf_attach(argc - 1, argv + 1);
    return bpf_detach(argc - 1, argv + 1);
#else
    fprintf(stderr, "inferctl bpf: this inferctl was built without BPF support "
                    "(meson -Dbpf=enabled needs clang, bpftool, libbpf and kernel BTF)\n");
    return 1;
#endif
}

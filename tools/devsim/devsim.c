/*
 * devsim.c - main: options, listening sockets, the accept thread, signals.
 *
 * Steps: read the inventory (file and/or command line), resolve and check
 * it (loopback only), raise the descriptor limit, bind every device's
 * socket, start the server (host keys, loop threads), write the pid file,
 * print "devsim ready N devices" on stdout, then accept until SIGTERM or
 * SIGINT.  SIGUSR1 changes every device's config (revision + 1); SIGUSR2
 * logs counters.
 */
#include "devsim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <libssh/libssh.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BACKLOG 1024

static void usage(FILE *f)
{
    fputs(
        "usage: devsim [options]\n"
        "Simulated network devices over SSH on loopback addresses (127.0.0.0/8 only).\n"
        "\n"
        "Devices:\n"
        "  -i, --inventory FILE   YAML inventory (see tools/devsim/README.md)\n"
        "  --count N              add N identical devices from the options below\n"
        "  --listen ADDR          their first address (default 127.0.0.1)\n"
        "  --base-port N          their first port (alias --port; default 30000)\n"
        "  --vary port|address    count up ports (default) or addresses (same port)\n"
        "  --type T               device_type (default cisco_ios)\n"
        "  --name-prefix P        names P-0001... (default dev)\n"
        "  --user U --password P  the login (default admin / admin)\n"
        "  --account U:P          another login (repeatable)\n"
        "  --enable-secret S      enable secret (default none: enable just works)\n"
        "  --config-kb N          running-config size (default 16)\n"
        "  --latency-ms N         delay before each command's answer\n"
        "  --rate-bps N           output rate limit, bytes/s (0 = none)\n"
        "  --pager on|off         pager at login (default: on where the type pages)\n"
        "  --page-lines N         pager page length (default 24)\n"
        "  --privileged-login     start at the privileged prompt\n"
        "  --fault NAME[=VALUE]   reject_auth, hang_after_auth, hang_mid_output,\n"
        "                         disconnect_mid_output, garbage, banner_prompts,\n"
        "                         kbdint_only, trickle[=MS], refuse_times=N,\n"
        "                         delay_banner_ms=N (repeatable)\n"
        "  --set KEY=VALUE        any inventory field (repeatable)\n"
        "\n"
        "Server:\n"
        "  --state-dir DIR        host keys and pid file (default $TMPDIR/devsim-UID)\n"
        "  --host-key-type T      ed25519 (default) or rsa\n"
        "  --pid-file FILE        default STATE_DIR/devsim.pid\n"
        "  --threads N            event-loop threads (default: CPUs, at most 4)\n"
        "  --max-sessions N       concurrent sessions (default 4096, fd limit permitting)\n"
        "  --idle-timeout S       drop sessions silent this long (default 600, 0 = never)\n"
        "  --login-timeout S      time to finish login (default 120)\n"
        "  --dump                 print the device list (TSV) and exit\n"
        "  --print-config NAME    print what a backup of device NAME must store (its config\n"
        "                         commands' output, no volatile or log lines) and exit\n"
        "  --check                check the inventory and exit\n"
        "  -q, --quiet            errors only;  -v, --verbose  one line per session event\n"
        "  --ssh-log N            libssh log level (0-4)\n"
        "  -h, --help\n",
        f);
}

enum {
    O_LISTEN = 256, O_PORT, O_COUNT, O_VARY, O_TYPE, O_PREFIX, O_USER, O_PASSWORD, O_ACCOUNT,
    O_ENABLE, O_CONFIG_KB, O_LATENCY, O_RATE, O_PAGER, O_PAGE_LINES, O_PRIV, O_FAULT, O_SET,
    O_STATE, O_KEYTYPE, O_PIDFILE, O_THREADS, O_MAXSESS, O_IDLE, O_LOGIN, O_DUMP, O_CHECK,
    O_SSHLOG, O_PRINT_CONFIG,
};

static const struct option longopts[] = {
    {"inventory", required_argument, NULL, 'i'},
    {"listen", required_argument, NULL, O_LISTEN},
    {"base-port", required_argument, NULL, O_PORT},
    {"port", required_argument, NULL, O_PORT},
    {"count", required_argument, NULL, O_COUNT},
    {"vary", required_argument, NULL, O_VARY},
    {"type", required_argument, NULL, O_TYPE},
    {"name-prefix", required_argument, NULL, O_PREFIX},
    {"user", required_argument, NULL, O_USER},
    {"password", required_argument, NULL, O_PASSWORD},
    {"account", required_argument, NULL, O_ACCOUNT},
    {"enable-secret", required_argument, NULL, O_ENABLE},
    {"config-kb", required_argument, NULL, O_CONFIG_KB},
    {"latency-ms", required_argument, NULL, O_LATENCY},
    {"rate-bps", required_argument, NULL, O_RATE},
    {"pager", required_argument, NULL, O_PAGER},
    {"page-lines", required_argument, NULL, O_PAGE_LINES},
    {"privileged-login", no_argument, NULL, O_PRIV},
    {"fault", required_argument, NULL, O_FAULT},
    {"set", required_argument, NULL, O_SET},
    {"state-dir", required_argument, NULL, O_STATE},
    {"host-key-type", required_argument, NULL, O_KEYTYPE},
    {"pid-file", required_argument, NULL, O_PIDFILE},
    {"threads", required_argument, NULL, O_THREADS},
    {"max-sessions", required_argument, NULL, O_MAXSESS},
    {"idle-timeout", required_argument, NULL, O_IDLE},
    {"login-timeout", required_argument, NULL, O_LOGIN},
    {"dump", no_argument, NULL, O_DUMP},
    {"check", no_argument, NULL, O_CHECK},
    {"print-config", required_argument, NULL, O_PRINT_CONFIG},
    {"ssh-log", required_argument, NULL, O_SSHLOG},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The command-line option that is just an inventory field. */
static const struct {
    int         opt;
    const char *key;
} opt_fields[] = {
    {O_LISTEN, "listen"},        {O_PORT, "port"},           {O_COUNT, "count"},
    {O_VARY, "vary"},            {O_TYPE, "device_type"},    {O_PREFIX, "name"},
    {O_USER, "username"},        {O_PASSWORD, "password"},   {O_ENABLE, "enable_secret"},
    {O_CONFIG_KB, "config_kb"},  {O_LATENCY, "latency_ms"},  {O_RATE, "rate_bps"},
    {O_PAGER, "pager"},          {O_PAGE_LINES, "page_lines"},
};

static unsigned parse_uint(const char *what, const char *v, unsigned max)
{
    char *end;
    unsigned long n;

    errno = 0;
    n = strtoul(v, &end, 10);
    if (errno || *end || end == v || n > max) {
        fprintf(stderr, "devsim: %s: want a number up to %u, got \"%s\"\n", what, max, v);
        exit(2);
    }
    return (unsigned)n;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "devsim: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void dump(const struct ds_inventory *inv)
{
    printf("name\thostname\tdevice_type\taddress\tport\tusername\tpassword\tenable_secret\t"
           "config_kb\tlatency_ms\tfaults\n");
    for (size_t i = 0; i < inv->ndevs; i++) {
        const struct ds_device *d = &inv->devs[i];
        const struct ds_faults *f = &d->faults;
        char faults[256] = "";
        size_t n = 0;

#define FLAG(x) if (f->x) n += (size_t)snprintf(faults + n, sizeof faults - n, "%s" #x, n ? "," : "")
#define NUM(x)  if (f->x) n += (size_t)snprintf(faults + n, sizeof faults - n, "%s" #x "=%u", n ? "," : "", f->x)
        FLAG(reject_auth); FLAG(hang_after_auth); FLAG(hang_mid_output);
        FLAG(disconnect_mid_output); FLAG(garbage); FLAG(banner_prompts); FLAG(kbdint_only);
        NUM(trickle_ms); NUM(refuse_times); NUM(delay_banner_ms);
#undef FLAG
#undef NUM
        printf("%s\t%s\t%s\t%s\t%u\t%s\t%s\t%s\t%u\t%u\t%s\n", d->name, d->hostname,
               d->device_type, d->listen, d->port, d->accounts[0].username,
               d->accounts[0].password, d->enable_secret, d->config_kb, d->latency_ms,
               faults[0] ? faults : "-");
    }
}

/* --print-config NAME: the text a backup of NAME must store, on stdout. */
static int print_config(struct ds_inventory *inv, const char *name)
{
    const struct ds_device *d = NULL;
    size_t len = 0;
    char *text;

    for (size_t i = 0; i < inv->ndevs && d == NULL; i++)
        if (strcmp(inv->devs[i].name, name) == 0)
            d = &inv->devs[i];
    if (d == NULL) {
        fprintf(stderr, "devsim: --print-config: no device named \"%s\" in the inventory "
                        "(--dump lists them)\n", name);
        ds_inventory_clear(inv);
        return 1;
    }
    text = ds_config_print(d, &len);
    if (text == NULL) {
        fprintf(stderr, "devsim: --print-config: out of memory\n");
        ds_inventory_clear(inv);
        return 1;
    }
    fwrite(text, 1, len, stdout);
    free(text);
    ds_inventory_clear(inv);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int listen_on(struct ds_device *d)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port),
                             .sin_addr = d->addr};
    int one = 1;
    int fd;

    /* Checked at resolve time too; never bind outside 127.0.0.0/8. */
    if ((ntohl(d->addr.s_addr) >> 24) != 127) {
        errno = EADDRNOTAVAIL;
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, BACKLOG) < 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    d->listen_fd = fd;
    return 0;
}

/* Accept everything pending on one device's socket. */
static void accept_some(struct ds_server *srv, struct ds_device *d)
{
    static uint64_t last_emfile;

    for (int k = 0; k < 64; k++) {
        int one = 1;
        int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                uint64_t now = ds_now_ms();
                struct timespec ts = {0, 10 * 1000 * 1000};

                if (now - last_emfile > 1000) {
                    ds_log(0, "accept: %s (raise the fd limit or lower --max-sessions)",
                           strerror(errno));
                    last_emfile = now;
                }
                nanosleep(&ts, NULL);   /* let sessions close before retrying */
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                       errno != ECONNABORTED) {
                ds_log(0, "%s: accept: %s", d->name, strerror(errno));
            }
            return;
        }
        if (atomic_fetch_add(&d->accepts, 1) < d->faults.refuse_times) {
            close(fd);          /* fault: refuse_times */
            ds_server_count_refused(srv);
            ds_log(2, "%s: connection refused by fault (refuse_times)", d->name);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ds_server_dispatch(srv, d, fd);
    }
}

int main(int argc, char **argv)
{
    struct ds_inventory inv = {0};
    struct ds_device cli;
    struct ds_opts o = {.host_key_type = NULL, .max_sessions = 4096, .idle_timeout_s = 600,
                        .login_timeout_s = 120};
    const char *inventory = NULL, *pid_file = NULL, *print_name = NULL;
    char state_dir[DS_STR_MAX], pid_path[DS_STR_MAX + 16], err[512];
    bool have_count = false, have_port = false, do_dump = false, do_check = false;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    struct ds_server *srv;
    struct rlimit rl;
    sigset_t sigs;
    int sfd, ep, opt;
    bool running = true;

    ds_device_defaults(&cli);
    snprintf(cli.name, sizeof cli.name, "dev");
    cli.port = 30000;
    cli.count = 1;
    o.threads = ncpu < 1 ? 1 : ncpu > 4 ? 4 : (unsigned)ncpu;
    while ((opt = getopt_long(argc, argv, "i:qvh", longopts, NULL)) != -1) {
        bool handled = false;

        for (size_t k = 0; k < sizeof opt_fields / sizeof opt_fields[0]; k++) {
            if (opt_fields[k].opt != opt)
                continue;
            if (ds_field_set(&cli, opt_fields[k].key, optarg, err, sizeof err) < 0)
                die("--%s", err);
            handled = true;
        }
        have_count |= opt == O_COUNT;
        have_port |= opt == O_PORT;
        if (handled)
            continue;
        switch (opt) {
        case 'i': inventory = optarg; break;
        case 'q': ds_verbosity = -1; break;
        case 'v': ds_verbosity = 1; break;
        case 'h': usage(stdout); return 0;
        case O_PRIV: cli.privileged_login = true; break;
        case O_ACCOUNT: {
            const char *colon = strchr(optarg, ':');
            struct ds_account *a;

            if (colon == NULL || cli.naccounts >= DS_MAX_ACCOUNTS)
                die("--account %s: want USER:PASSWORD (at most 8 accounts)", optarg);
            a = &cli.accounts[cli.naccounts++];
            snprintf(a->username, sizeof a->username, "%.*s", (int)(colon - optarg), optarg);
            snprintf(a->password, sizeof a->password, "%s", colon + 1);
            break;
        }
        case O_FAULT:
        case O_SET: {
            char key[64];
            const char *eq = strchr(optarg, '=');
            const char *val = eq ? eq + 1 : opt == O_FAULT ? "true" : NULL;
            const struct ds_field *f = NULL;

            snprintf(key, sizeof key, "%.*s", eq ? (int)(eq - optarg) : (int)strlen(optarg),
                     optarg);
            for (const struct ds_field *x = ds_fields; x->key; x++)
                if (strcmp(x->key, key) == 0)
                    f = x;
            if (val == NULL)
                die("--set %s: want KEY=VALUE", optarg);
            if (opt == O_FAULT && (f == NULL || !f->fault))
                die("--fault %s: not a fault", key);
            if (ds_field_set(&cli, key, val, err, sizeof err) < 0)
                die("%s", err);
            break;
        }
        case O_STATE: o.state_dir = optarg; break;
        case O_KEYTYPE: o.host_key_type = optarg; break;
        case O_PIDFILE: pid_file = optarg; break;
        case O_THREADS: o.threads = parse_uint("--threads", optarg, 64); break;
        case O_MAXSESS: o.max_sessions = parse_uint("--max-sessions", optarg, 1000000); break;
        case O_IDLE: o.idle_timeout_s = parse_uint("--idle-timeout", optarg, 86400); break;
        case O_LOGIN: o.login_timeout_s = parse_uint("--login-timeout", optarg, 86400); break;
        case O_SSHLOG: o.ssh_log = (int)parse_uint("--ssh-log", optarg, 4); break;
        case O_DUMP: do_dump = true; break;
        case O_CHECK: do_check = true; break;
        case O_PRINT_CONFIG: print_name = optarg; break;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (o.threads == 0)
        o.threads = 1;

    if (inventory && ds_inventory_load(&inv, inventory, err, sizeof err) < 0)
        die("%s", err);
    if (have_count || (!inventory && have_port)) {
        if (ds_inventory_add(&inv, &cli, err, sizeof err) < 0)
            die("%s", err);
    }
    if (ds_inventory_resolve(&inv, err, sizeof err) < 0)
        die("%s", err);
    if (print_name)
        return print_config(&inv, print_name);
    if (do_dump || do_check) {
        if (do_dump)
            dump(&inv);
        else
            printf("devsim: inventory ok, %zu devices\n", inv.ndevs);
        ds_inventory_clear(&inv);
        return 0;
    }

    if (o.state_dir == NULL) {
        if (inv.state_dir[0]) {
            snprintf(state_dir, sizeof state_dir, "%s", inv.state_dir);
        } else {
            const char *tmp = getenv("TMPDIR");

            snprintf(state_dir, sizeof state_dir, "%s/devsim-%u", tmp && *tmp ? tmp : "/tmp",
                     (unsigned)getuid());
        }
        o.state_dir = state_dir;
    }
    if (o.host_key_type == NULL)
        o.host_key_type = inv.host_key_type[0] ? inv.host_key_type : "ed25519";

    /* Descriptors: one per device, one per session, and some to spare. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < inv.ndevs + 64)
            die("the descriptor limit (%llu) is too low for %zu devices",
                (unsigned long long)rl.rlim_cur, inv.ndevs);
        if (o.max_sessions > rl.rlim_cur - inv.ndevs - 64) {
            o.max_sessions = (unsigned)(rl.rlim_cur - inv.ndevs - 64);
            ds_log(1, "max sessions lowered to %u by the descriptor limit", o.max_sessions);
        }
    }

    /* Signals go to signalfd in the accept loop; threads inherit the mask. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (sfd < 0 || ep < 0)
        die("signalfd/epoll: %s", strerror(errno));
    {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

        epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
    }
    for (size_t i = 0; i < inv.ndevs; i++) {
        struct ds_device *d = &inv.devs[i];
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = d};
        char where[64];

        if (listen_on(d) < 0) {
            snprintf(where, sizeof where, "%s:%u", d->listen, d->port);
            die("cannot listen on %s: %s", where, strerror(errno));
        }
        if (epoll_ctl(ep, EPOLL_CTL_ADD, d->listen_fd, &ev) < 0)
            die("epoll: %s", strerror(errno));
    }

    ssh_init();
    srv = ds_server_new(&inv, &o, err, sizeof err);
    if (srv == NULL)
        die("%s", err);

    if (pid_file == NULL) {
        snprintf(pid_path, sizeof pid_path, "%s/devsim.pid", o.state_dir);
        pid_file = pid_path;
    }
    {
        FILE *pf = fopen(pid_file, "w");

        if (pf == NULL) {
            ds_log(0, "pid file %s: %s", pid_file, strerror(errno));
        } else {
            fprintf(pf, "%ld\n", (long)getpid());
            fclose(pf);
        }
    }
    ds_log(1, "%zu devices (first %s %s:%u, last %s %s:%u), %u threads, state dir %s",
           inv.ndevs, inv.devs[0].name, inv.devs[0].listen, inv.devs[0].port,
           inv.devs[inv.ndevs - 1].name, inv.devs[inv.ndevs - 1].listen,
           inv.devs[inv.ndevs - 1].port, o.threads, o.state_dir);
    printf("devsim ready %zu devices\n", inv.ndevs);
    fflush(stdout);

    while (running) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, -1);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            ds_log(0, "epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct signalfd_siginfo si;

            if (evs[i].data.ptr != NULL) {
                accept_some(srv, evs[i].data.ptr);
                continue;
            }
            while (read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                    running = false;
                else if (si.ssi_signo == SIGUSR1)
                    ds_server_bump_revision(srv);
                else if (si.ssi_signo == SIGUSR2)
                    ds_server_stats(srv);
            }
        }
    }

    ds_log(1, "stopping");
    for (size_t i = 0; i < inv.ndevs; i++)
        if (inv.devs[i].listen_fd >= 0)
            close(inv.devs[i].listen_fd);
    ds_server_stats(srv);
    ds_server_free(srv);
    ssh_finalize();
    unlink(pid_file);
    close(ep);
    close(sfd);
    ds_inventory_clear(&inv);
    return 0;
}

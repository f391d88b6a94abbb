/*
 * knownhosts.h - the host keys the worker trusts, read from an OpenSSH
 * known_hosts file once and kept in memory.
 *
 * DESIGN
 *   libssh reads and parses the whole known_hosts file for every session
 *   (once to order the host key algorithms, once to check the key), which
 *   with accept-new holds a line per device: the cost of a session grew
 *   with the fleet, and the check had to be serialised.  Here the file is
 *   parsed once into a hash table of host names (plus a short list of the
 *   lines that need matching: hashed names and wildcard patterns), looked
 *   up under a read lock, and read again only when its identity, size or
 *   modification time changes (an operator who removes the line of a
 *   replaced device is heard at the next session).  Keys the worker learns
 *   are appended to the file in OpenSSH's format and to the table under
 *   the write lock, so two sessions to the same new device store one line.
 *
 *   What a line may hold, as OpenSSH writes and reads it:
 *     host[,host...] keytype base64 [comment]
 *   where a host is a name or address, "[name]:port" for a port other than
 *   22, a pattern with * and ? (a leading ! negates it), or a hashed name
 *   "|1|salt|hmac" (HMAC-SHA1 of the name, as `ssh-keygen -H` writes).
 *   Lines starting with a marker (@cert-authority, @revoked) are skipped, as
 *   libssh 0.10 does; lines that do not parse are skipped and counted.
 *   Names are compared without regard to case.
 *
 *   A file that does not exist holds no key (it is created, mode 0600, with
 *   its folder, when the first key is stored); one that cannot be read is
 *   treated the same way and the reason kept for the "not stored" message.
 *
 *   One table per file path, for the life of the process (the registry
 *   behind nr_known_hosts_open); nr_known_hosts_close_all() frees them.
 */
#ifndef NETRAVEN_KNOWNHOSTS_H
#define NETRAVEN_KNOWNHOSTS_H

#include <stdbool.h>
#include <stddef.h>

struct nr_known_hosts;

enum nr_kh_state {
    NR_KH_OK,           /* a line for the host holds this key */
    NR_KH_CHANGED,      /* lines for the host hold other keys of this type */
    NR_KH_OTHER,        /* lines for the host hold keys of other types only */
    NR_KH_UNKNOWN,      /* no line for the host */
};

/* The table of path, made (and the file read) on first use.  Never NULL. */
struct nr_known_hosts *nr_known_hosts_open(const char *path);

/* Frees every table; no table may be in use. */
void nr_known_hosts_close_all(void);

/*
 * What the file says of the key (type, base64 as in known_hosts) of
 * host:port.  With learn, an unknown key is appended to the file (and
 * *stored set) unless that fails, when err says why; err may be NULL.
 */
enum nr_kh_state nr_known_hosts_check(struct nr_known_hosts *kh, const char *host, int port,
                                      const char *type, const char *b64, bool learn,
                                      bool *stored, char *err, size_t errlen);

/*
 * The key types of the lines for host:port, comma separated and each once,
 * in the order of the file, into out (truncated at a type boundary).
 * Returns how many were written.
 */
size_t nr_known_hosts_types(struct nr_known_hosts *kh, const char *host, int port, char *out,
                            size_t outlen);

/* Lines read from the file the last time it was read but skipped as
 * malformed, and how many times it was read (for tests). */
size_t nr_known_hosts_skipped(struct nr_known_hosts *kh);
unsigned nr_known_hosts_reads(struct nr_known_hosts *kh);

#endif

/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What an NBD client costs per request, libnbd against hand-written code
 * (issue 20's question for the nbd driver), built and run by
 * bench/proxy.sh:
 *
 *   nbd-client-cost libnbd|hand SOCKET SECONDS QD BS SIZE
 *
 * Both keep QD random reads of BS bytes in flight on one connection from
 * one thread, for SECONDS, and print "IOPS CPU-µs-per-request".
 *  - libnbd: nbd_aio_pread and nbd_poll, as the nbd driver's pollers do
 *    (structured replies, as the driver negotiates them);
 *  - hand: plugins/nbd-common's client handshake, then the simple-reply
 *    transmission phase written out here: the least a hand-written client
 *    could do (no structured replies, no block status, no TLS).
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <libnbd.h>

#include "nbd-client.h"
#include "nbd-proto.h"

static uint64_t cost_size, cost_bs, cost_rng = 88172645463325252ull;
static long cost_done;

static double cost_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cost_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static uint64_t cost_offset(void)
{
    cost_rng ^= cost_rng << 13;
    cost_rng ^= cost_rng >> 7;
    cost_rng ^= cost_rng << 17;
    return cost_rng % (cost_size / cost_bs) * cost_bs;
}

/* ---- libnbd ---- */

static int cost_libnbd_done(void *opaque, int *error)
{
    if (*error) {
        fprintf(stderr, "read failed: %s\n", strerror(*error));
        exit(1);
    }
    cost_done++;
    return 1;
}

static void cost_libnbd(const char *sock, double secs, int qd)
{
    struct nbd_handle *h = nbd_create();
    char uri[4200];
    snprintf(uri, sizeof(uri), "nbd+unix:///?socket=%s", sock);
    if (!h || nbd_set_pread_initialize(h, false) < 0 ||
        nbd_connect_uri(h, uri) < 0) {
        fprintf(stderr, "%s\n", nbd_get_error());
        exit(1);
    }
    char *bufs = malloc((size_t)qd * cost_bs);
    nbd_completion_callback cb = { .callback = cost_libnbd_done };
    double end = cost_now() + secs;
    long issued = 0;
    while (cost_now() < end) {
        while (issued - cost_done < qd) {
            if (nbd_aio_pread(h, bufs + (issued % qd) * cost_bs, cost_bs,
                              cost_offset(), cb, 0) < 0) {
                fprintf(stderr, "%s\n", nbd_get_error());
                exit(1);
            }
            issued++;
        }
        if (nbd_poll(h, -1) < 0) {
            fprintf(stderr, "%s\n", nbd_get_error());
            exit(1);
        }
    }
    while (cost_done < issued)
        nbd_poll(h, -1);
    nbd_close(h);
    free(bufs);
}

/* ---- hand-written, over nbd-common's handshake ---- */

static void cost_full(int fd, void *buf, size_t n, int is_write)
{
    char *p = buf;
    while (n) {
        ssize_t r = is_write ? write(fd, p, n) : read(fd, p, n);
        if (r <= 0) {
            perror(is_write ? "write" : "read");
            exit(1);
        }
        p += r;
        n -= (size_t)r;
    }
}

static void cost_hand_send(int fd, uint64_t cookie)
{
    uint8_t req[28];
    uint32_t magic = htobe32(NBD_REQUEST_MAGIC), len = htobe32(cost_bs);
    uint16_t flags = 0, type = htobe16(NBD_CMD_READ);
    uint64_t c = htobe64(cookie), off = htobe64(cost_offset());
    memcpy(req, &magic, 4);
    memcpy(req + 4, &flags, 2);
    memcpy(req + 6, &type, 2);
    memcpy(req + 8, &c, 8);
    memcpy(req + 16, &off, 8);
    memcpy(req + 24, &len, 4);
    cost_full(fd, req, 28, 1);
}

static void cost_hand(const char *sock, double secs, int qd)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        perror(sock);
        exit(1);
    }
    NbdClientExport ex;
    BhError *err = NULL;
    if (nbd_client_handshake(fd, "", &ex, &err) < 0) {
        fprintf(stderr, "%s\n", bh_error_message(err));
        exit(1);
    }
    char *buf = malloc(cost_bs);
    double end = cost_now() + secs;
    long issued = 0;
    for (; issued < qd; issued++)
        cost_hand_send(fd, (uint64_t)issued);
    while (cost_done < issued) {
        uint8_t rep[16];
        uint32_t magic, error;
        cost_full(fd, rep, 16, 0);
        memcpy(&magic, rep, 4);
        memcpy(&error, rep + 4, 4);
        if (be32toh(magic) != NBD_SIMPLE_REPLY_MAGIC || error) {
            fprintf(stderr, "bad reply\n");
            exit(1);
        }
        cost_full(fd, buf, cost_bs, 0);
        cost_done++;
        if (cost_now() < end)
            cost_hand_send(fd, (uint64_t)issued++);
    }
    close(fd);
    free(buf);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: nbd-client-cost libnbd|hand SOCKET SECONDS "
                "QD BS SIZE\n");
        return 2;
    }
    double secs = atof(argv[3]);
    int qd = atoi(argv[4]);
    cost_bs = strtoull(argv[5], NULL, 0);
    cost_size = strtoull(argv[6], NULL, 0);
    double t0 = cost_now(), c0 = cost_cpu();
    if (strcmp(argv[1], "libnbd") == 0)
        cost_libnbd(argv[2], secs, qd);
    else
        cost_hand(argv[2], secs, qd);
    double t = cost_now() - t0, c = cost_cpu() - c0;
    printf("%.0f %.1f\n", cost_done / t, c * 1e6 / (double)cost_done);
    return 0;
}

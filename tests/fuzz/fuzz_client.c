/* fuzz_client.c: libFuzzer target for the daemon's client state machine:
 * the startup packet (StartupMessage, SSLRequest, GSSENCRequest,
 * CancelRequest), authentication (scram-sha-256, md5, password, trust, peer),
 * login to a pool or to the admin console, then messages.
 *
 * It links the daemon's own objects and sets up its process-wide state as
 * server_run() does, without listeners or signals. Each input is one client
 * connection: client_adopt_fd() serves one end of a socketpair, the input is
 * written to the other end in chunks while the loop runs without blocking,
 * the answers are read and dropped; then the connection is closed and the
 * loop run until every handle of it is gone, so each input starts from the
 * same state and LSan sees a leak on the input that caused it.
 *
 * Backends are real libpq connections to fake_pg.c, a stand-in server on
 * the same loop (Unix socket in a temporary directory): logins, relaying,
 * prepared statements, resets and pinning all run. Pools: app (transaction),
 * sess (session), echo (transaction, echo, 2 prepared statements kept,
 * reset by COMMIT), and down, whose server's socket does not exist, so a
 * checkout fails at once (pool_timeout = 0: no retry). The transaction-mode
 * pools know their server's parameters from the start (set here), so a
 * login there is answered without a backend. Backends are closed after each
 * input.
 *
 * Input: byte 0, bits 0-2 pick auth_type (0 scram-sha-256, 1 md5,
 * 2 password, 3 trust, 4 peer, above: trust), bits 3-5 the chunk size
 * (1 to 65536 bytes); the rest is what the client sends. Users in auth_file:
 * alice (a SCRAM verifier of "pencil"), bob (md5 of "secret"), carol
 * (plaintext "secret"); admin_users = carol. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/backend.h"
#include "daemon/client.h"
#include "daemon/flush.h"
#include "daemon/log.h"
#include "daemon/pools.h"
#include "daemon/server.h"
#include "tests/fuzz/fake_pg.h"
#include "tests/fuzz/fuzz_check.h"

#define FAKE_PORT 5432

static const char config_format[] = "[tidepool]\n"
                                    "listen_addr =\n"
                                    "auth_type = trust\n"
                                    "admin_users = carol\n"
                                    "max_client_conn = 10\n"
                                    "log_level = error\n"
                                    "pool_timeout = 0\n"
                                    "url = host=%s port=%d user=fuzz dbname=fuzz\n"
                                    "[pool.app]\n"
                                    "pool_mode = transaction\n"
                                    "[pool.sess]\n"
                                    "pool_mode = session\n"
                                    "[pool.echo]\n"
                                    "pool_mode = transaction\n"
                                    "echo = debug\n"
                                    "echo_pool = debug\n"
                                    "max_prepared_statements = 2\n"
                                    "pool_reset_on_return = commit\n"
                                    "[pool.down]\n"
                                    "pool_mode = transaction\n"
                                    "url = host=/nonexistent/tidepool-fuzz port=5432 user=fuzz dbname=fuzz\n";

static const char users_text[] =
    "\"alice\" \"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\"\n"
    "\"bob\" \"md521f3163f8f86fa10bdefbfbd502a8f06\"\n"
    "\"carol\" \"secret\"\n";

static config *cfg;
static char fake_dir[] = "/tmp/tidepool-fuzz-XXXXXX";
static char fake_socket[128];

static void remove_fake_dir(void)
{
    unlink(fake_socket);
    rmdir(fake_dir);
}

static void setup(void)
{
    FUZZ_CHECK(mkdtemp(fake_dir) != NULL);
    snprintf(fake_socket, sizeof fake_socket, "%s/.s.PGSQL.%d", fake_dir, FAKE_PORT);
    atexit(remove_fake_dir);
    char text[2048];
    FUZZ_CHECK((size_t)snprintf(text, sizeof text, config_format, fake_dir, FAKE_PORT) < sizeof text);
    config_errors errs = {0};
    FUZZ_CHECK(config_load_string(text, "fuzz.ini", &cfg, &errs) == 0);
    config_errors_clear(&errs);
    memset(&tp, 0, sizeof tp);
    tp.loop = uv_default_loop();
    tp.cfg = cfg;
    /* TIDEPOOL_FUZZ_DEBUG=1: the daemon's debug log, to see what an input does. */
    log_set_level(getenv("TIDEPOOL_FUZZ_DEBUG") ? CONFIG_LOG_DEBUG : CONFIG_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    int line;
    const char *why;
    FUZZ_CHECK(auth_file_parse(users_text, &tp.users, &line, &why) == 0);
    tp.have_users = true;
    FUZZ_CHECK(pools_create(cfg) == 0);
    flush_init();
    FUZZ_CHECK(fake_pg_start(tp.loop, fake_dir, FAKE_PORT) == 0);
    /* As if their first backend had reported these (so every input starts
     * alike): logins to the transaction-mode pools are answered without a
     * backend. */
    static const char *const known[][2] = {{"server_version", "16.0"},  {"server_encoding", "UTF8"},
                                           {"client_encoding", "UTF8"}, {"DateStyle", "ISO, MDY"},
                                           {"TimeZone", "UTC"},         {"integer_datetimes", "on"}};
    for (size_t i = 0; i < pools_count(); i++) {
        tp_pool *p = pools_at(i);
        if (p->cfg.pool_mode != CONFIG_POOL_MODE_TRANSACTION) continue;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            FUZZ_CHECK(params_set(&p->server_params, known[k][0], known[k][1]) == 0);
    }
}

/* Run the loop n times without blocking: reads, the end-of-iteration flush,
 * write completions, the fake server's answers and close callbacks each take
 * an iteration. */
static void spin(int n)
{
    for (int i = 0; i < n; i++)
        uv_run(tp.loop, UV_RUN_NOWAIT);
}

static size_t backends_total(void)
{
    size_t n = 0;
    for (size_t i = 0; i < pools_count(); i++)
        n += (size_t)pools_at(i)->n_backends;
    return n;
}

/* Between inputs: every backend closed (after the resets of the clients'
 * backends ran), so each input starts from the same state. */
static void close_backends(void)
{
    for (int i = 0; i < 16; i++) {
        bool busy = false;
        for (size_t k = 0; k < pools_count(); k++)
            for (tp_backend *b = pools_at(k)->backends; b; b = b->next_all)
                busy |= b->state != BACKEND_IDLE && b->state != BACKEND_CLOSING;
        if (!busy) break;
        spin(4);
    }
    for (size_t k = 0; k < pools_count(); k++)
        for (tp_backend *b = pools_at(k)->backends, *next; b; b = next) {
            next = b->next_all;
            backend_close(b, "next fuzz input");
        }
    for (int i = 0; i < 16 && (backends_total() > 0 || fake_pg_connections() > 0); i++)
        spin(4);
}

/* Read and drop what the daemon answered. */
static void drain(int fd)
{
    uint8_t buf[65536];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    if (size < 1) return 0;
    static const config_auth_type auths[8] = {
        CONFIG_AUTH_SCRAM_SHA_256, CONFIG_AUTH_MD5,   CONFIG_AUTH_PASSWORD, CONFIG_AUTH_TRUST,
        CONFIG_AUTH_PEER,          CONFIG_AUTH_TRUST, CONFIG_AUTH_TRUST,    CONFIG_AUTH_TRUST};
    static const size_t chunks[8] = {1, 3, 8, 64, 512, 4096, 4096, 65536};
    cfg->auth_type = auths[data[0] & 7];
    size_t chunk = chunks[(data[0] >> 3) & 7];
    data++;
    size--;

    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    FUZZ_CHECK(client_adopt_fd(sv[0]) == 0);
    size_t off = 0;
    int stuck = 0;
    while (off < size && stuck < 100) {
        size_t n = size - off < chunk ? size - off : chunk;
        ssize_t w = send(sv[1], data + off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
            stuck = 0;
        } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            break; /* the daemon closed the connection */
        } else {
            stuck++; /* the daemon stopped reading (backpressure) */
        }
        spin(1);
        drain(sv[1]);
    }
    /* Let the answers come (a backend connecting takes a few round trips),
     * then the client hangs up; whatever is left is closed as at shutdown. */
    spin(16);
    drain(sv[1]);
    close(sv[1]);
    spin(4);
    for (tp_client *c = tp.clients, *next; c; c = next) {
        next = c->next;
        client_fatal(c, NULL, NULL);
    }
    spin(4);
    close_backends();
    FUZZ_CHECK(tp.clients == NULL && tp.n_clients == 0);
    FUZZ_CHECK(fake_pg_connections() == 0);
    for (size_t i = 0; i < pools_count(); i++) {
        const tp_pool *p = pools_at(i);
        FUZZ_CHECK(p->clients == 0 && p->pinned == 0 && p->n_backends == 0 && p->retrying == NULL);
    }
    return 0;
}

/* client_tls.h: TLS between a client and tidepool (client_tls_* keys,
 * docs/tls.md). One SSL_CTX for the process, built at start and rebuilt on
 * reload; a client that asked for TLS with SSLRequest gets a client_tls (an
 * SSL object over two memory BIOs), a plaintext client only a NULL pointer.
 *
 * The client's socket stays libuv's: what uv reads is handed to
 * client_tls_read, which decrypts it into the client's input buffer; what the
 * client writes goes through client_tls_write, which encrypts it and writes
 * the ciphertext with client_write_raw. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

typedef struct tp_client tp_client;
typedef struct client_tls client_tls;

/* Build the SSL_CTX from cfg's client_tls_* keys and make it the one new
 * TLS clients get (sessions already running keep theirs). With
 * client_tls_sslmode = disable there is none. Returns 0, or -1 with what is
 * wrong in err ("client_tls_cert_file: cannot open '…': …"); the context in
 * force is then unchanged. Called at start, and to be called on reload. */
int client_tls_configure(const config *cfg, char *err, size_t errlen) __attribute__((warn_unused_result));
/* --check: the same checks (files readable, key matches certificate, cipher
 * list usable), nothing kept. */
int client_tls_check(const config *cfg, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Free the context (at exit). */
void client_tls_cleanup(void);
/* A context is in force: SSLRequest is answered 'S'. */
bool client_tls_enabled(void);

/* After 'S' was sent: c->tls is set up for the server side of a handshake.
 * -1 when out of memory. */
int client_tls_start(tp_client *c) __attribute__((warn_unused_result));
/* Ciphertext uv read: handshake, or decrypt into c->in. Returns 0, or -1
 * when the connection must close (the reason is logged; a TLS alert may have
 * been written). */
int client_tls_read(tp_client *c, const uint8_t *data, size_t len) __attribute__((warn_unused_result));
/* Encrypt plaintext and write the ciphertext. -1 when the connection must
 * close. Before the handshake finished nothing can be sent: dropped. */
int client_tls_write(tp_client *c, const uint8_t *data, size_t len) __attribute__((warn_unused_result));
/* Leaving: send close_notify (best effort). */
void client_tls_close_notify(tp_client *c);
/* Free a client's TLS state (NULL is fine). */
void client_tls_free(client_tls *t);
/* "TLSv1.3" and such once the handshake is done, else NULL. */
const char *client_tls_version(const tp_client *c);

/*
 * runenv: what a configuration needs of the machine it will run on,
 * checked once the file is loaded, by `portico -t` as by a start, so -t
 * refuses what start-up would: a user or group that does not exist, a log
 * file whose directory is missing or that cannot be written, a
 * tls_ticket_key file the user cannot read once privileges are dropped.
 * What may only go wrong later (a log directory the user cannot create
 * files in, needed after a rotation) is a warning.
 *
 * Checks that depend on who writes the files are made for the process
 * that will: the user of `user` when running as root, else the one running.
 */
#ifndef PORTICO_RUNENV_H
#define PORTICO_RUNENV_H

struct conf_ctx;
struct config;

void runenv_check(struct conf_ctx *ctx, const struct config *conf);

#endif

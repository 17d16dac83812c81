/*
 * websocket: WebSocket endpoints of the origin (`websocket = echo` and
 * `websocket = chat`): the opening handshake of RFC 6455 section 4 with
 * subprotocols, an Origin allow-list and permessage-deflate, then the
 * connection is a ws_conn (origin/ws_conn.h) in the route's mode.  Echo
 * sends each message back; chat (origin/chat.h) makes the path below the
 * prefix a room of origin/room.h's hub and joins the connection to it.
 */
#ifndef PORTICO_WEBSOCKET_H
#define PORTICO_WEBSOCKET_H

#include "common/handler.h"

extern const struct handler_ops websocket_ops;

#endif

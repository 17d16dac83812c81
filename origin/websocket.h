/*
 * websocket: WebSocket endpoints of the origin (`websocket = echo`): the
 * opening handshake of RFC 6455 section 4 with subprotocols, an Origin
 * allow-list and permessage-deflate, then the connection is a ws_conn
 * (origin/ws_conn.h) in the route's mode.  Echo sends each message back.
 * A chat mode (rooms, origin/room.c) plugs in as one more struct ws_mode.
 */
#ifndef PORTICO_WEBSOCKET_H
#define PORTICO_WEBSOCKET_H

#include "common/handler.h"

extern const struct handler_ops websocket_ops;

#endif

/*
 * return: fixed responses and redirects, like nginx's `return`.
 *   return = 204
 *   return = 200 hello        (text/plain unless return_type says otherwise)
 *   return = 301 https://example.com/
 *   return = 200 + return_file = /etc/portico/maintenance.html
 */
#ifndef PORTICO_RETURN_H
#define PORTICO_RETURN_H

#include "common/handler.h"

extern const struct handler_ops return_ops;

#endif

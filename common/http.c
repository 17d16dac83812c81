#include "common/http.h"

#include <stdio.h>
#include <stdint.h>
#include <string.h>

const char *
http_status_text(int s)
{
	switch (s) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	}
	return "Unknown";
}

void
http_date(time_t t, char *buf, size_t len)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char mons[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
		"Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
	    tm.tm_mday, mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int
month_index(const char *m)
{
	static const char mons[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

	for (int i = 0; i < 12; i++)
		if (memcmp(m, mons + i * 3, 3) == 0)
			return i;
	return -1;
}

static int
two_digits(const char *p)
{
	if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9')
		return -1;
	return (p[0] - '0') * 10 + (p[1] - '0');
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), without timegm's locale or TZ. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int
hms(const char *p, int *h, int *mi, int *sec)
{
	if (p[2] != ':' || p[5] != ':')
		return -1;
	*h = two_digits(p);
	*mi = two_digits(p + 3);
	*sec = two_digits(p + 6);
	return (*h < 0 || *h > 23 || *mi < 0 || *mi > 59 || *sec < 0 || *sec > 60) ? -1 : 0;
}

int
http_parse_date(const char *s, size_t len, time_t *out)
{
	char b[64];
	int day, mon, year, h, mi, sec;
	const char *p;

	if (len >= sizeof(b) || len < 24)
		return -1;
	memcpy(b, s, len);
	b[len] = '\0';
	p = strchr(b, ' ');
	if (p == NULL)
		return -1;
	if (len == 29 && b[3] == ',' && b[4] == ' ') {
		/* Sun, 06 Nov 1994 08:49:37 GMT */
		day = two_digits(b + 5);
		if (b[7] != ' ' || (mon = month_index(b + 8)) < 0 || b[11] != ' ')
			return -1;
		int y1 = two_digits(b + 12), y2 = two_digits(b + 14);
		if (y1 < 0 || y2 < 0 || b[16] != ' ' || hms(b + 17, &h, &mi, &sec) < 0 ||
		    strcmp(b + 25, " GMT") != 0)
			return -1;
		year = y1 * 100 + y2;
	} else if (b[3] == ' ' && len == 24) {
		/* Sun Nov  6 08:49:37 1994 */
		if ((mon = month_index(b + 4)) < 0 || b[7] != ' ')
			return -1;
		day = b[8] == ' ' ? (b[9] >= '0' && b[9] <= '9' ? b[9] - '0' : -1) : two_digits(b + 8);
		if (b[10] != ' ' || hms(b + 11, &h, &mi, &sec) < 0 || b[19] != ' ')
			return -1;
		int y1 = two_digits(b + 20), y2 = two_digits(b + 22);
		if (y1 < 0 || y2 < 0)
			return -1;
		year = y1 * 100 + y2;
	} else {
		/* Sunday, 06-Nov-94 08:49:37 GMT */
		const char *c = strchr(b, ',');
		if (c == NULL || c[1] != ' ' || strlen(c) != 24)
			return -1;
		day = two_digits(c + 2);
		if (c[4] != '-' || (mon = month_index(c + 5)) < 0 || c[8] != '-')
			return -1;
		year = two_digits(c + 9);
		if (year < 0 || c[11] != ' ' || hms(c + 12, &h, &mi, &sec) < 0 ||
		    strcmp(c + 20, " GMT") != 0)
			return -1;
		/* RFC 9110 5.6.7: a two-digit year that would be more than 50 years
		 * in the future means the most recent past year with those digits. */
		time_t now = time(NULL);
		struct tm tmnow;
		gmtime_r(&now, &tmnow);
		int cur = tmnow.tm_year + 1900;
		year += cur - cur % 100;
		if (year > cur + 50)
			year -= 100;
	}
	if (day < 1 || day > 31)
		return -1;
	*out = (time_t)(days_from_civil(year, (unsigned)mon + 1, (unsigned)day) * 86400 +
	    h * 3600 + mi * 60 + sec);
	return 0;
}

size_t
http_host_len(const char *h, size_t n)
{
	const char *end;

	if (n > 0 && h[0] == '[') {
		end = memchr(h, ']', n);
		return end != NULL ? (size_t)(end - h) + 1 : n;
	}
	end = memchr(h, ':', n);
	return end != NULL ? (size_t)(end - h) : n;
}

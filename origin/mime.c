#include "origin/mime.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Sorted by extension (checked by the unit test); text types carry their charset. */
static const struct { const char *ext, *type; } builtin[] = {
	{ "7z", "application/x-7z-compressed" },
	{ "aac", "audio/aac" },
	{ "apng", "image/apng" },
	{ "atom", "application/atom+xml" },
	{ "avi", "video/x-msvideo" },
	{ "avif", "image/avif" },
	{ "bin", "application/octet-stream" },
	{ "bmp", "image/bmp" },
	{ "bz2", "application/x-bzip2" },
	{ "css", "text/css; charset=utf-8" },
	{ "csv", "text/csv; charset=utf-8" },
	{ "doc", "application/msword" },
	{ "docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document" },
	{ "eot", "application/vnd.ms-fontobject" },
	{ "epub", "application/epub+zip" },
	{ "flac", "audio/flac" },
	{ "gif", "image/gif" },
	{ "gz", "application/gzip" },
	{ "htm", "text/html; charset=utf-8" },
	{ "html", "text/html; charset=utf-8" },
	{ "ico", "image/x-icon" },
	{ "ics", "text/calendar; charset=utf-8" },
	{ "jar", "application/java-archive" },
	{ "jpeg", "image/jpeg" },
	{ "jpg", "image/jpeg" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "json", "application/json" },
	{ "jsonld", "application/ld+json" },
	{ "m4a", "audio/mp4" },
	{ "m4v", "video/mp4" },
	{ "manifest", "text/cache-manifest; charset=utf-8" },
	{ "map", "application/json" },
	{ "md", "text/markdown; charset=utf-8" },
	{ "mid", "audio/midi" },
	{ "mjs", "text/javascript; charset=utf-8" },
	{ "mkv", "video/x-matroska" },
	{ "mov", "video/quicktime" },
	{ "mp3", "audio/mpeg" },
	{ "mp4", "video/mp4" },
	{ "mpeg", "video/mpeg" },
	{ "oga", "audio/ogg" },
	{ "ogg", "audio/ogg" },
	{ "ogv", "video/ogg" },
	{ "otf", "font/otf" },
	{ "pdf", "application/pdf" },
	{ "png", "image/png" },
	{ "ppt", "application/vnd.ms-powerpoint" },
	{ "pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation" },
	{ "rar", "application/vnd.rar" },
	{ "rss", "application/rss+xml" },
	{ "rtf", "application/rtf" },
	{ "svg", "image/svg+xml" },
	{ "svgz", "image/svg+xml" },
	{ "tar", "application/x-tar" },
	{ "tif", "image/tiff" },
	{ "tiff", "image/tiff" },
	{ "ts", "video/mp2t" },
	{ "ttf", "font/ttf" },
	{ "txt", "text/plain; charset=utf-8" },
	{ "wasm", "application/wasm" },
	{ "wav", "audio/wav" },
	{ "weba", "audio/webm" },
	{ "webm", "video/webm" },
	{ "webmanifest", "application/manifest+json" },
	{ "webp", "image/webp" },
	{ "woff", "font/woff" },
	{ "woff2", "font/woff2" },
	{ "xhtml", "application/xhtml+xml" },
	{ "xls", "application/vnd.ms-excel" },
	{ "xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" },
	{ "xml", "application/xml" },
	{ "xz", "application/x-xz" },
	{ "yaml", "application/yaml" },
	{ "yml", "application/yaml" },
	{ "zip", "application/zip" },
	{ "zst", "application/zstd" },
};

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mime_entry *)a)->ext, ((const struct mime_entry *)b)->ext);
}

static int
entry_seq_cmp(const void *a, const void *b)
{
	const struct mime_entry *x = a, *y = b;
	int c = strcmp(x->ext, y->ext);

	return c != 0 ? c : (x->seq < y->seq ? -1 : x->seq > y->seq);
}

/* Text types get a charset unless the file named one. */
static char *
with_charset(const char *type)
{
	char *out;

	if (strncmp(type, "text/", 5) != 0 || strchr(type, ';') != NULL)
		return strdup(type);
	if (asprintf(&out, "%s; charset=utf-8", type) < 0)
		return NULL;
	return out;
}

int
mime_load(struct mime_table *t, const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0;

	if (fp == NULL) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, fp) >= 0) {
		char *save = NULL, *type, *ext;
		lineno++;
		char *hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		type = strtok_r(line, " \t\r\n", &save);
		if (type == NULL)
			continue;
		if (strchr(type, '/') == NULL || strlen(type) > 127) {
			snprintf(err, errlen, "%s:%d: \"%s\" is not a media type", path, lineno, type);
			goto fail;
		}
		while ((ext = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
			if (t->n >= 100000) {
				snprintf(err, errlen, "%s:%d: too many extensions", path, lineno);
				goto fail;
			}
			struct mime_entry *v = realloc(t->v, (t->n + 1) * sizeof(*v));
			if (v == NULL)
				goto oom;
			t->v = v;
			v[t->n].ext = strdup(ext);
			v[t->n].type = with_charset(type);
			if (v[t->n].ext == NULL || v[t->n].type == NULL) {
				free(v[t->n].ext);
				free(v[t->n].type);
				goto oom;
			}
			for (char *p = v[t->n].ext; *p != '\0'; p++)
				*p = (char)tolower((unsigned char)*p);
			t->n++;
		}
	}
	free(line);
	fclose(fp);
	/* Keep the last line's type for an extension given twice: a stable
	 * order by (ext, line) and then the last of each run. */
	for (size_t i = 0; i < t->n; i++)
		t->v[i].seq = i;
	qsort(t->v, t->n, sizeof(*t->v), entry_seq_cmp);
	size_t k = 0;
	for (size_t i = 0; i < t->n; i++) {
		if (i + 1 < t->n && strcmp(t->v[i].ext, t->v[i + 1].ext) == 0) {
			free(t->v[i].ext);
			free(t->v[i].type);
			continue;
		}
		t->v[k++] = t->v[i];
	}
	t->n = k;
	return 0;
oom:
	snprintf(err, errlen, "%s: out of memory", path);
fail:
	free(line);
	fclose(fp);
	mime_free(t);
	return -1;
}

void
mime_free(struct mime_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].ext);
		free(t->v[i].type);
	}
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

const char *
mime_lookup(const struct mime_table *t, const char *name, size_t len)
{
	char ext[16];
	size_t i = len, n;

	while (i > 0 && name[i - 1] != '.' && name[i - 1] != '/')
		i--;
	if (i == 0 || name[i - 1] != '.' || (n = len - i) == 0 || n >= sizeof(ext))
		return "application/octet-stream";
	for (size_t k = 0; k < n; k++)
		ext[k] = (char)tolower((unsigned char)name[i + k]);
	ext[n] = '\0';
	if (t != NULL && t->n > 0) {
		struct mime_entry key = { .ext = ext };
		struct mime_entry *e = bsearch(&key, t->v, t->n, sizeof(*t->v), entry_cmp);
		if (e != NULL)
			return e->type;
	}
	size_t lo = 0, hi = sizeof(builtin) / sizeof(builtin[0]);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(ext, builtin[mid].ext);
		if (c == 0)
			return builtin[mid].type;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return "application/octet-stream";
}

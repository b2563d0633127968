/* escape: see escape.h. */
#include "escape.h"

#include <string.h>

int escape_utf8(const unsigned char *s, size_t n, unsigned *cp)
{
	unsigned c = s[0], min, len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, min = 0x80, c &= 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, min = 0x800, c &= 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, min = 0x10000, c &= 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (unsigned i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return (int)len;
}

void escape_json(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	if (!s) {
		fputs("null", f);
		return;
	}
	n = strlen(s);
	putc('"', f);
	while (n) {
		unsigned cp;
		int k = escape_utf8(p, n, &cp);
		if (k == 0) {
			fputs("\\ufffd", f);
			p++, n--;
			continue;
		}
		if (cp == '"' || cp == '\\')
			fprintf(f, "\\%c", (char)cp);
		else if (cp == '\n')
			fputs("\\n", f);
		else if (cp == '\t')
			fputs("\\t", f);
		else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) ||
			 cp == 0x2028 || cp == 0x2029)
			fprintf(f, "\\u%04x", cp);
		else
			fwrite(p, 1, (size_t)k, f);
		p += k, n -= (size_t)k;
	}
	putc('"', f);
}

/* Code points a terminal may act on or that reorder what is shown. */
static int escape_risky(unsigned cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0) ||
	       (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

void escape_text(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = s ? strlen(s) : 0;

	while (n) {
		unsigned cp;
		int k = escape_utf8(p, n, &cp);
		if (k == 0) {
			fprintf(f, "\\x%02x", *p);
			p++, n--;
			continue;
		}
		if (cp == '\\')
			fputs("\\\\", f);
		else if (cp < 0x80 && escape_risky(cp))
			fprintf(f, "\\x%02x", cp);
		else if (escape_risky(cp))
			fprintf(f, "\\u{%04x}", cp);
		else
			fwrite(p, 1, (size_t)k, f);
		p += k, n -= (size_t)k;
	}
}

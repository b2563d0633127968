/*
 * escape: printing strings that came from a trace (argv, paths), which may
 * hold anything. JSON output is valid UTF-8 with control characters
 * escaped; text output never sends a control character, C1 control or
 * bidirectional override to the terminal.
 */
#ifndef FORKSCOPE_ESCAPE_H
#define FORKSCOPE_ESCAPE_H

#include <stdio.h>

/* Writes s as a JSON string with its quotes; invalid UTF-8 bytes become
 * U+FFFD. NULL is written as null. */
void escape_json(FILE *f, const char *s);

/* Writes s for a terminal: controls and invalid bytes as \xNN, other
 * dangerous code points as \u{NNNN}, backslash as \\. */
void escape_text(FILE *f, const char *s);

/* Decodes one UTF-8 code point of s (at most n bytes); returns its length,
 * or 0 when the bytes are not valid UTF-8 (overlong, surrogate, cut). */
int escape_utf8(const unsigned char *s, size_t n, unsigned *cp);

#endif /* FORKSCOPE_ESCAPE_H */

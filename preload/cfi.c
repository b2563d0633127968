/*
 * A frame's unwind rule read straight from its object's .eh_frame, for
 * the rules table of unwind_cache.c. libunwind answers the same question
 * only through a whole unw_step in a cursor made for it (about 1.2 us
 * here: its table search, its register-state cache, its checks), and its
 * first use in an image costs ~30 us of setting up; most rules a program
 * needs are plain (CFA = rsp + c or rbp + 16, rbp saved in the frame or
 * untouched), and reading one takes a binary search of the object's
 * .eh_frame_hdr and a short run of its CFA program.
 *
 * The object and its .eh_frame_hdr come from _dl_find_object (glibc 2.35:
 * lock-free, no allocation, made for unwinders); the table is read as the
 * linker writes it (datarel sdata4 pairs, sorted). Anything else -- no
 * table, an address no FDE covers (libunwind then guesses from rbp), a
 * signal frame, a CFA by expression (gcc's DRAP), a register rule this
 * does not follow, an encoding or opcode it does not know -- says 0, and
 * libunwind decides as before. Every read stays inside the object's
 * extent (its PT_LOAD segments) as our scan of the loaded objects found
 * it: _dl_find_object's own extent is only the segment of the address for
 * the main program.
 */
#include <dlfcn.h>
#include <stdint.h>

#include "fsk.h"

#pragma weak _dl_find_object

#define CFI_RBP 6
#define CFI_RSP 7
#define CFI_RIP 16
#define CFI_STATES 8            /* DW_CFA_remember_state depth followed */

enum { RULE_SAME, RULE_OFFSET, RULE_UNDEF, RULE_OTHER };

struct cfi_reg {
	int kind;
	int64_t off;            /* RULE_OFFSET: saved at CFA + off */
};

struct cfi_state {
	int cfa_reg;            /* -1: by an expression */
	int64_t cfa_off;
	struct cfi_reg rbp, rip;
};

/* A reader over [p, end): any read past end sets bad. */
struct cfi_cur {
	const uint8_t *p, *end;
	int bad;
};

static uint64_t cfi_bytes(struct cfi_cur *c, unsigned n)
{
	if (c->bad || (size_t)(c->end - c->p) < n) {
		c->bad = 1;
		return 0;
	}
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)c->p[i] << (8 * i);
	c->p += n;
	return v;
}

/* ULEB128 / SLEB128 at *pp, inlined into the CFA program's loop: most
 * are one byte. 0 past end or past 64 bits. */
static inline __attribute__((always_inline)) int cfi_uleb_at(const uint8_t **pp, const uint8_t *end,
							     uint64_t *out)
{
	const uint8_t *p = *pp;
	if (unlikely(p >= end))
		return 0;
	uint64_t b = *p++, v = b & 0x7f;
	for (unsigned shift = 7; b & 0x80; shift += 7) {
		if (unlikely(p >= end || shift >= 64))
			return 0;
		b = *p++;
		v |= (b & 0x7f) << shift;
	}
	*pp = p;
	*out = v;
	return 1;
}

static inline __attribute__((always_inline)) int cfi_sleb_at(const uint8_t **pp, const uint8_t *end,
							     int64_t *out)
{
	const uint8_t *p = *pp;
	uint64_t b, v = 0;
	unsigned shift = 0;
	do {
		if (unlikely(p >= end || shift >= 64))
			return 0;
		b = *p++;
		v |= (b & 0x7f) << shift;
		shift += 7;
	} while (b & 0x80);
	if (shift < 64 && (b & 0x40))
		v |= ~0ull << shift;
	*pp = p;
	*out = (int64_t)v;
	return 1;
}

static uint64_t cfi_uleb(struct cfi_cur *c)
{
	uint64_t v = 0;
	if (c->bad || !cfi_uleb_at(&c->p, c->end, &v))
		c->bad = 1;
	return v;
}

static int64_t cfi_sleb(struct cfi_cur *c)
{
	int64_t v = 0;
	if (c->bad || !cfi_sleb_at(&c->p, c->end, &v))
		c->bad = 1;
	return v;
}

/* A DW_EH_PE_* encoded pointer: the value formats and the pc-relative
 * application; others (datarel outside the header, aligned, indirect
 * for a target) set bad. */
static uint64_t cfi_ptr(struct cfi_cur *c, uint8_t enc)
{
	const uint8_t *at = c->p;
	uint64_t v;
	switch (enc & 0x0f) {
	case 0x00: /* absptr */
	case 0x04: /* udata8 */
	case 0x0c: /* sdata8 */
		v = cfi_bytes(c, 8);
		break;
	case 0x02:
		v = cfi_bytes(c, 2);
		break;
	case 0x0a:
		v = (uint64_t)(int64_t)(int16_t)cfi_bytes(c, 2);
		break;
	case 0x03:
		v = cfi_bytes(c, 4);
		break;
	case 0x0b:
		v = (uint64_t)(int64_t)(int32_t)cfi_bytes(c, 4);
		break;
	case 0x01:
		v = cfi_uleb(c);
		break;
	case 0x09:
		v = (uint64_t)cfi_sleb(c);
		break;
	default:
		c->bad = 1;
		return 0;
	}
	switch (enc & 0x70) {
	case 0x00:
		return v;
	case 0x10: /* pcrel */
		return v + (uint64_t)(uintptr_t)at;
	default:
		c->bad = 1;
		return 0;
	}
}

/* What a CIE says that its FDEs need. */
struct cfi_cie {
	uint64_t code_align;
	int64_t data_align;
	uint8_t fde_enc;
	int aug_z;
	const uint8_t *ops, *ops_end;   /* the initial instructions */
};

/* 1 when the CIE at p (inside [lo, hi)) is one this reader follows. */
static int cfi_cie_read(const uint8_t *p, const uint8_t *lo, const uint8_t *hi, struct cfi_cie *ci)
{
	struct cfi_cur c = { p, hi, 0 };
	if (p < lo)
		return 0;
	uint64_t len = cfi_bytes(&c, 4);
	if (c.bad || len == 0 || len >= 0xfffffff0u || len > (uint64_t)(hi - c.p))
		return 0;
	c.end = c.p + len;
	if (cfi_bytes(&c, 4) != 0) /* a CIE's id */
		return 0;
	uint64_t version = cfi_bytes(&c, 1);
	if (version != 1 && version != 3)
		return 0;
	const uint8_t *aug = c.p;
	while (!c.bad && cfi_bytes(&c, 1))
		;
	if (c.bad)
		return 0;
	ci->code_align = cfi_uleb(&c);
	ci->data_align = cfi_sleb(&c);
	uint64_t ra = version == 1 ? cfi_bytes(&c, 1) : cfi_uleb(&c);
	if (c.bad || ra != CFI_RIP || !ci->code_align)
		return 0;
	ci->fde_enc = 0;
	ci->aug_z = aug[0] == 'z';
	if (aug[0] && !ci->aug_z)
		return 0;
	if (ci->aug_z) {
		uint64_t alen = cfi_uleb(&c);
		if (c.bad || alen > (uint64_t)(c.end - c.p))
			return 0;
		struct cfi_cur a = { c.p, c.p + alen, 0 };
		for (const uint8_t *s = aug + 1; *s; s++) {
			if (*s == 'R') {
				ci->fde_enc = (uint8_t)cfi_bytes(&a, 1);
			} else if (*s == 'L') {
				cfi_bytes(&a, 1);
			} else if (*s == 'P') {
				uint8_t enc = (uint8_t)cfi_bytes(&a, 1);
				/* the personality routine's pointer: only skipped
				 * (an aligned one is not followed) */
				if ((enc & 0x70) == 0x50)
					return 0;
				cfi_ptr(&a, enc & 0x0f);
			} else {
				return 0; /* 'S' (a signal frame), or one not known */
			}
		}
		if (a.bad)
			return 0;
		c.p += alen;
	}
	ci->ops = c.p;
	ci->ops_end = c.end;
	return 1;
}

static inline __attribute__((always_inline)) void cfi_set(struct cfi_state *s, uint64_t reg,
							  int kind, int64_t off)
{
	if (reg == CFI_RBP) {
		s->rbp.kind = kind;
		s->rbp.off = off;
	} else if (reg == CFI_RIP) {
		s->rip.kind = kind;
		s->rip.off = off;
	}
}

static inline __attribute__((always_inline)) void cfi_restore(struct cfi_state *s,
							      const struct cfi_state *init, uint64_t reg)
{
	if (reg == CFI_RBP)
		s->rbp = init->rbp;
	else if (reg == CFI_RIP)
		s->rip = init->rip;
}

#define ULEB(v)                                          \
	do {                                             \
		if (unlikely(!cfi_uleb_at(&p, end, &(v)))) \
			return 0;                        \
	} while (0)
#define SLEB(v)                                          \
	do {                                             \
		if (unlikely(!cfi_sleb_at(&p, end, &(v)))) \
			return 0;                        \
	} while (0)
#define FIXED(v, n)                                      \
	do {                                             \
		if (unlikely((size_t)(end - p) < (n)))   \
			return 0;                        \
		(v) = 0;                                 \
		for (unsigned k_ = 0; k_ < (n); k_++)    \
			(v) |= (uint64_t)p[k_] << (8 * k_); \
		p += (n);                                \
	} while (0)

/* Runs the CFA program [p, end) from location loc until the row that
 * holds pc; init: the CIE's rules (NULL while running the CIE's own,
 * where no location moves). 1 when done, 0 on what is not followed.
 * A big function's program runs to hundreds of bytes before pc (cc1's:
 * ~460 on average), once per return address learnt: the loop keeps
 * its state in registers and decodes a byte or two an op. */
static int cfi_run(const uint8_t *p, const uint8_t *end, const struct cfi_cie *ci, uint64_t pc,
		   uint64_t loc, struct cfi_state *s, const struct cfi_state *init)
{
	struct cfi_state saved[CFI_STATES];
	unsigned depth = 0;
	const uint64_t caf = ci->code_align;
	const int64_t daf = ci->data_align;
	while (p < end) {
		uint8_t op = *p++;
		uint64_t reg, u, delta;
		int64_t v;
		switch (op >> 6) {
		case 1:
			delta = op & 0x3f;
			goto advance;
		case 2:
			ULEB(u);
			cfi_set(s, op & 0x3f, RULE_OFFSET, (int64_t)u * daf);
			continue;
		case 3:
			if (!init)
				return 0;
			cfi_restore(s, init, op & 0x3f);
			continue;
		}
		switch (op) {
		case 0x00: /* nop */
			continue;
		case 0x02:
			FIXED(delta, 1);
			goto advance;
		case 0x03:
			FIXED(delta, 2);
			goto advance;
		case 0x04:
			FIXED(delta, 4);
			goto advance;
		case 0x05: /* offset_extended */
			ULEB(reg);
			ULEB(u);
			cfi_set(s, reg, RULE_OFFSET, (int64_t)u * daf);
			continue;
		case 0x06: /* restore_extended */
			ULEB(reg);
			if (!init)
				return 0;
			cfi_restore(s, init, reg);
			continue;
		case 0x07: /* undefined */
			ULEB(reg);
			cfi_set(s, reg, RULE_UNDEF, 0);
			continue;
		case 0x08: /* same_value */
			ULEB(reg);
			cfi_set(s, reg, RULE_SAME, 0);
			continue;
		case 0x09: /* register */
			ULEB(reg);
			ULEB(u);
			cfi_set(s, reg, RULE_OTHER, 0);
			continue;
		case 0x0a: /* remember_state: the CFA rule too, as gcc expects */
			if (depth == CFI_STATES)
				return 0;
			saved[depth++] = *s;
			continue;
		case 0x0b: /* restore_state */
			if (!depth)
				return 0;
			*s = saved[--depth];
			continue;
		case 0x0c: /* def_cfa */
			ULEB(reg);
			ULEB(u);
			s->cfa_reg = reg < 64 ? (int)reg : 64;
			s->cfa_off = (int64_t)u;
			continue;
		case 0x0d: /* def_cfa_register */
			ULEB(reg);
			s->cfa_reg = reg < 64 ? (int)reg : 64;
			continue;
		case 0x0e: /* def_cfa_offset */
			ULEB(u);
			s->cfa_off = (int64_t)u;
			continue;
		case 0x0f: /* def_cfa_expression */
			ULEB(u);
			if (u > (uint64_t)(end - p))
				return 0;
			p += u;
			s->cfa_reg = -1;
			continue;
		case 0x10: /* expression */
		case 0x16: /* val_expression */
			ULEB(reg);
			ULEB(u);
			if (u > (uint64_t)(end - p))
				return 0;
			p += u;
			cfi_set(s, reg, RULE_OTHER, 0);
			continue;
		case 0x11: /* offset_extended_sf */
			ULEB(reg);
			SLEB(v);
			cfi_set(s, reg, RULE_OFFSET, v * daf);
			continue;
		case 0x12: /* def_cfa_sf */
			ULEB(reg);
			SLEB(v);
			s->cfa_reg = reg < 64 ? (int)reg : 64;
			s->cfa_off = v * daf;
			continue;
		case 0x13: /* def_cfa_offset_sf */
			SLEB(v);
			s->cfa_off = v * daf;
			continue;
		case 0x14: /* val_offset */
			ULEB(reg);
			ULEB(u);
			cfi_set(s, reg, RULE_OTHER, 0);
			continue;
		case 0x15: /* val_offset_sf */
			ULEB(reg);
			SLEB(v);
			cfi_set(s, reg, RULE_OTHER, 0);
			continue;
		case 0x2e: /* GNU_args_size */
			ULEB(u);
			continue;
		case 0x2f: /* GNU_negative_offset_extended */
			ULEB(reg);
			ULEB(u);
			cfi_set(s, reg, RULE_OFFSET, -(int64_t)u * daf);
			continue;
		default: /* set_loc, GNU_window_save, vendor ones */
			return 0;
		}
advance:
		if (!init)
			return 0; /* a CIE's program does not move */
		loc += delta * caf;
		if (loc > pc)
			return 1; /* the row of pc ended here */
	}
	return 1;
}

/* The FDE of pc from the sorted table of .eh_frame_hdr at hdr, or NULL. */
static const uint8_t *cfi_fde(const uint8_t *hdr, const uint8_t *lo, const uint8_t *hi, uint64_t pc)
{
	struct cfi_cur c = { hdr, hi, 0 };
	if (hdr < lo || cfi_bytes(&c, 1) != 1)
		return NULL;
	uint8_t ptr_enc = (uint8_t)cfi_bytes(&c, 1);
	uint8_t count_enc = (uint8_t)cfi_bytes(&c, 1);
	uint8_t table_enc = (uint8_t)cfi_bytes(&c, 1);
	cfi_ptr(&c, ptr_enc);
	uint64_t count = cfi_ptr(&c, count_enc);
	if (c.bad || table_enc != 0x3b || !count || count > (uint64_t)(hi - c.p) / 8)
		return NULL;
	const int32_t *t = (const int32_t *)(const void *)c.p;
	int64_t want = (int64_t)(pc - (uint64_t)(uintptr_t)hdr);
	uint64_t a = 0, b = count;
	if (want < t[0])
		return NULL;
	while (b - a > 1) { /* t[2a] <= want < t[2b] */
		uint64_t m = a + (b - a) / 2;
		if (t[2 * m] <= want)
			a = m;
		else
			b = m;
	}
	const uint8_t *fde = hdr + t[2 * a + 1];
	return fde >= lo && fde < hi ? fde : NULL;
}

int cfi_row(uint64_t ip, struct cfi_row *row)
{
	struct dl_find_object fo;
	uint64_t pc = ip - 1; /* ip is a return address: the call's row */
	if (!_dl_find_object || _dl_find_object((void *)(uintptr_t)pc, &fo) != 0 || !fo.dlfo_eh_frame)
		return 0;
	uint64_t mlo, mhi;
	if (!unwind_mod_extent(pc, &mlo, &mhi))
		return 0;
	const uint8_t *lo = (const uint8_t *)(uintptr_t)mlo, *hi = (const uint8_t *)(uintptr_t)mhi;
	const uint8_t *fde = cfi_fde(fo.dlfo_eh_frame, lo, hi, pc);
	if (!fde)
		return 0;
	struct cfi_cur c = { fde, hi, 0 };
	uint64_t len = cfi_bytes(&c, 4);
	if (c.bad || len == 0 || len >= 0xfffffff0u || len > (uint64_t)(hi - c.p))
		return 0;
	c.end = c.p + len;
	const uint8_t *idp = c.p;
	uint64_t id = cfi_bytes(&c, 4);
	struct cfi_cie ci;
	if (c.bad || !id || id > (uint64_t)(idp - lo) || !cfi_cie_read(idp - id, lo, hi, &ci))
		return 0;
	uint64_t begin = cfi_ptr(&c, ci.fde_enc);
	uint64_t range = cfi_ptr(&c, ci.fde_enc & 0x0f);
	if (ci.aug_z) {
		uint64_t n = cfi_uleb(&c);
		if (n > (uint64_t)(c.end - c.p))
			return 0;
		c.p += n;
	}
	if (c.bad || pc < begin || pc - begin >= range)
		return 0; /* no FDE covers pc: libunwind's guess from rbp */
	/* x86-64's start: CFA = rsp + 8, the return address at CFA - 8 */
	struct cfi_state init = { CFI_RSP, 8, { RULE_SAME, 0 }, { RULE_OFFSET, -8 } };
	if (!cfi_run(ci.ops, ci.ops_end, &ci, pc, begin, &init, NULL))
		return 0;
	struct cfi_state s = init;
	if (!cfi_run(c.p, c.end, &ci, pc, begin, &s, &init))
		return 0;
	if (s.rip.kind == RULE_UNDEF) {
		row->end = 1;
		return 1;
	}
	if ((s.cfa_reg != CFI_RSP && s.cfa_reg != CFI_RBP) || s.rip.kind != RULE_OFFSET ||
	    s.rip.off != -8 || (s.rbp.kind != RULE_SAME && s.rbp.kind != RULE_OFFSET))
		return 0;
	row->end = 0;
	row->cfa_rbp = s.cfa_reg == CFI_RBP;
	row->cfa_off = s.cfa_off;
	row->rbp_saved = s.rbp.kind == RULE_OFFSET;
	row->rbp_off = s.rbp.off;
	return 1;
}

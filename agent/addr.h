/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * addr: kbreaker's one address form and the only code that converts to and
 * from it. An address is 16 bytes in network order, IPv4 as the IPv4-mapped
 * IPv6 address ::ffff:a.b.c.d (what the BPF maps key on, include/kb_abi.h);
 * a prefix length counts in that 128-bit space, so IPv4 /n is 96 + n.
 * Pure: no I/O, no allocation.
 */
#ifndef KB_ADDR_H
#define KB_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t kb_addr_t[16];

/* Room for the longest text addr_prefix_text() writes: an IPv6 address and "/128". */
#define ADDR_TEXT_MAX 52

/* Whether addr is IPv4-mapped (::ffff:a.b.c.d). */
bool addr_is_v4(const uint8_t addr[16]);

/* addr = ::ffff:a.b.c.d from the 4 bytes (network order) at v4. */
void addr_from_v4(uint8_t addr[16], const void *v4);

/*
 * Parse an IPv4 or IPv6 literal (inet_pton's syntax: no brackets, no zone)
 * into the 16-byte form. Returns 0 or -EINVAL; addr is untouched on error.
 */
int addr_parse(const char *s, uint8_t addr[16]);

/*
 * Parse "a.b.c.d/n" (n 0..32) or "x::/n" (n 0..128; decimal, no sign, no
 * leading zero) into the 16-byte form and a prefix length in that space.
 * Returns 0, -ERANGE when bits are set beyond the prefix ("10.0.0.1/8"), or
 * -EINVAL for anything else; addr and *prefix_len are untouched on error.
 */
int addr_parse_cidr(const char *s, uint8_t addr[16], uint8_t *prefix_len);

/* Text of addr: dotted IPv4 for a mapped address, else IPv6. Returns buf. */
const char *addr_text(const uint8_t addr[16], char *buf, size_t len);

/*
 * Text of a prefix: the address alone for 128, else "address/n" with n
 * counted as written (8 for 10.0.0.0/8, not 104). Returns buf.
 */
const char *addr_prefix_text(const uint8_t addr[16], uint8_t prefix_len, char *buf, size_t len);

#endif /* KB_ADDR_H */

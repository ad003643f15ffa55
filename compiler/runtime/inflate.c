/* A small inflater in the style of zlib's puff.c: canonical Huffman codes are
 * decoded one bit at a time against per-length symbol counts. It is slower
 * than zlib's table decoder but short enough to read in one sitting, and the
 * data it sees (IDX image sets) is a few MB. */
#include "inflate.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BITS 15
#define MAX_LITLEN_CODES 286
#define MAX_DIST_CODES 30
#define FIXED_LITLEN_CODES 288

struct inflater {
    const uint8_t *in;
    size_t in_size, in_pos;
    uint32_t bit_buffer;
    int bit_count;
    uint8_t *out;
    size_t out_size, out_capacity;
    size_t max_out;  /* more output is an error */
    size_t head;     /* 0, or stop (successfully) once this much output is made */
    const char *error;
    jmp_buf on_error;
};

struct huffman {
    uint16_t count[MAX_BITS + 1]; /* codes of each length */
    uint16_t symbol[FIXED_LITLEN_CODES]; /* symbols ordered by code */
};

enum { FAILED = 1, HEAD_DONE = 2 };  /* what longjmp brings back to run() */

static _Noreturn void stop(struct inflater *s, const char *error)
{
    s->error = error;
    longjmp(s->on_error, FAILED);
}

static uint32_t bits(struct inflater *s, int need)
{
    uint32_t value = s->bit_buffer;
    while (s->bit_count < need) {
        if (s->in_pos == s->in_size) {
            stop(s, "unexpected end of compressed data");
        }
        value |= (uint32_t)s->in[s->in_pos++] << s->bit_count;
        s->bit_count += 8;
    }
    s->bit_buffer = value >> need;
    s->bit_count -= need;
    return value & ((1u << need) - 1);
}

static void reserve(struct inflater *s, size_t more)
{
    if (s->head && s->out_size >= s->head) {
        longjmp(s->on_error, HEAD_DONE);
    }
    if (more > s->max_out - s->out_size) {
        stop(s, "decompresses to more than the expected size (a gzip bomb?)");
    }
    if (s->out_size + more <= s->out_capacity) {
        return;
    }
    size_t capacity = s->out_capacity ? s->out_capacity : 1 << 16;
    while (capacity < s->out_size + more) {
        capacity *= 2;
    }
    uint8_t *grown = realloc(s->out, capacity);
    if (grown == NULL) {
        stop(s, "out of memory");
    }
    s->out = grown;
    s->out_capacity = capacity;
}

static void stored_block(struct inflater *s)
{
    s->bit_buffer = 0;
    s->bit_count = 0;
    if (s->in_size - s->in_pos < 4) {
        stop(s, "unexpected end of compressed data");
    }
    const uint8_t *p = s->in + s->in_pos;
    unsigned length = p[0] | p[1] << 8;
    if ((p[2] | p[3] << 8) != (~length & 0xffff)) {
        stop(s, "stored block length check failed");
    }
    s->in_pos += 4;
    if (s->in_size - s->in_pos < length) {
        stop(s, "unexpected end of compressed data");
    }
    reserve(s, length);
    memcpy(s->out + s->out_size, s->in + s->in_pos, length);
    s->out_size += length;
    s->in_pos += length;
}

/* Builds the canonical code for `lengths`; incomplete codes are allowed only
 * where RFC 1951 permits them (a single distance code). */
static void build_huffman(struct inflater *s, struct huffman *h, const uint8_t *lengths, int n)
{
    uint16_t offsets[MAX_BITS + 1];
    memset(h->count, 0, sizeof h->count);
    for (int i = 0; i < n; i++) {
        h->count[lengths[i]]++;
    }
    int left = 1;
    for (int len = 1; len <= MAX_BITS; len++) {
        left = 2 * left - h->count[len];
        if (left < 0) {
            stop(s, "over-subscribed Huffman code");
        }
    }
    offsets[1] = 0;
    for (int len = 1; len < MAX_BITS; len++) {
        offsets[len + 1] = offsets[len] + h->count[len];
    }
    for (int i = 0; i < n; i++) {
        if (lengths[i] != 0) {
            h->symbol[offsets[lengths[i]]++] = (uint16_t)i;
        }
    }
}

static int decode(struct inflater *s, const struct huffman *h)
{
    int code = 0, first = 0, index = 0;
    for (int len = 1; len <= MAX_BITS; len++) {
        code |= (int)bits(s, 1);
        int count = h->count[len];
        if (code - count < first) {
            return h->symbol[index + (code - first)];
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    stop(s, "invalid Huffman code");
}

static const uint16_t length_base[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27,
                                          31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t length_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                         2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                        193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097,
                                        6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static void copy_match(struct inflater *s, size_t length, size_t distance)
{
    if (distance > s->out_size) {
        stop(s, "distance too far back");
    }
    reserve(s, length);
    uint8_t *dst = s->out + s->out_size;
    const uint8_t *src = dst - distance;
    for (size_t i = 0; i < length; i++) { /* byte by byte: the ranges may overlap */
        dst[i] = src[i];
    }
    s->out_size += length;
}

static void compressed_block(struct inflater *s, const struct huffman *litlen,
                             const struct huffman *dist)
{
    for (;;) {
        int symbol = decode(s, litlen);
        if (symbol < 256) {
            reserve(s, 1);
            s->out[s->out_size++] = (uint8_t)symbol;
            continue;
        }
        if (symbol == 256) {
            return;
        }
        symbol -= 257;
        if (symbol >= 29) {
            stop(s, "invalid length code");
        }
        size_t length = length_base[symbol] + bits(s, length_extra[symbol]);
        int dsym = decode(s, dist);
        if (dsym >= MAX_DIST_CODES) {
            stop(s, "invalid distance code");
        }
        copy_match(s, length, dist_base[dsym] + bits(s, dist_extra[dsym]));
    }
}

static void fixed_block(struct inflater *s)
{
    uint8_t lengths[FIXED_LITLEN_CODES];
    struct huffman litlen, dist;
    memset(lengths, 8, 144);
    memset(lengths + 144, 9, 112);
    memset(lengths + 256, 7, 24);
    memset(lengths + 280, 8, 8);
    build_huffman(s, &litlen, lengths, FIXED_LITLEN_CODES);
    memset(lengths, 5, MAX_DIST_CODES);
    build_huffman(s, &dist, lengths, MAX_DIST_CODES);
    compressed_block(s, &litlen, &dist);
}

/* Code lengths for the literal/length and distance codes, themselves Huffman coded. */
static void read_code_lengths(struct inflater *s, uint8_t *lengths, int total)
{
    static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    int n_code = (int)bits(s, 4) + 4;
    uint8_t code_lengths[19] = {0};
    for (int i = 0; i < n_code; i++) {
        code_lengths[order[i]] = (uint8_t)bits(s, 3);
    }
    struct huffman lencode;
    build_huffman(s, &lencode, code_lengths, 19);
    for (int i = 0; i < total;) {
        int symbol = decode(s, &lencode);
        if (symbol < 16) {
            lengths[i++] = (uint8_t)symbol;
            continue;
        }
        if (symbol == 16 && i == 0) {
            stop(s, "repeat with no previous length");
        }
        uint8_t value = symbol == 16 ? lengths[i - 1] : 0;
        int repeat = symbol == 16 ? 3 + (int)bits(s, 2) : symbol == 17 ? 3 + (int)bits(s, 3)
                                                                       : 11 + (int)bits(s, 7);
        if (i + repeat > total) {
            stop(s, "too many code lengths");
        }
        memset(lengths + i, value, (size_t)repeat);
        i += repeat;
    }
}

static void dynamic_block(struct inflater *s)
{
    int n_litlen = (int)bits(s, 5) + 257;
    int n_dist = (int)bits(s, 5) + 1;
    if (n_litlen > MAX_LITLEN_CODES || n_dist > MAX_DIST_CODES) {
        stop(s, "bad code counts");
    }
    uint8_t lengths[MAX_LITLEN_CODES + MAX_DIST_CODES];
    read_code_lengths(s, lengths, n_litlen + n_dist);
    if (lengths[256] == 0) {
        stop(s, "no end-of-block code");
    }
    struct huffman litlen, dist;
    build_huffman(s, &litlen, lengths, n_litlen);
    build_huffman(s, &dist, lengths + n_litlen, n_dist);
    compressed_block(s, &litlen, &dist);
}

static void inflate_blocks(struct inflater *s)
{
    int last;
    do {
        last = (int)bits(s, 1);
        switch (bits(s, 2)) {
        case 0: stored_block(s); break;
        case 1: fixed_block(s); break;
        case 2: dynamic_block(s); break;
        default: stop(s, "invalid block type");
        }
    } while (!last);
}

static uint32_t crc32(const uint8_t *data, size_t size)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        }
        table[i] = c;
    }
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < size; i++) {
        crc = table[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
    }
    return crc ^ 0xffffffffu;
}

bool gzip_has_magic(const uint8_t *data, size_t size)
{
    return size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

static void skip_zero_terminated(struct inflater *s)
{
    while (s->in_pos < s->in_size && s->in[s->in_pos] != 0) {
        s->in_pos++;
    }
    s->in_pos++;
}

/* Moves past the header of the gzip member at in_pos (RFC 1952 section 2.3). */
static void skip_gzip_header(struct inflater *s)
{
    enum { FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16 };
    const uint8_t *m = s->in + s->in_pos;
    size_t left = s->in_size - s->in_pos;
    if (left < 18 || !gzip_has_magic(m, left) || m[2] != 8) {
        stop(s, "not a gzip deflate stream");
    }
    int flags = m[3];
    s->in_pos += 10;
    if (flags & FEXTRA) {
        s->in_pos += 2 + (m[10] | m[11] << 8);
    }
    if (flags & FNAME) {
        skip_zero_terminated(s);
    }
    if (flags & FCOMMENT) {
        skip_zero_terminated(s);
    }
    s->in_pos += (flags & FHCRC) ? 2 : 0;
    if (s->in_pos + 8 > s->in_size) {
        stop(s, "truncated gzip header");
    }
}

static uint32_t load_le32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Checks the trailer of the member whose output starts at `start`. */
static void check_gzip_trailer(struct inflater *s, size_t start)
{
    if (s->in_size - s->in_pos < 8) {
        stop(s, "missing gzip trailer (truncated?)");
    }
    const uint8_t *trailer = s->in + s->in_pos;
    if (load_le32(trailer) != crc32(s->out + start, s->out_size - start)) {
        stop(s, "CRC-32 mismatch (corrupt data)");
    }
    if (load_le32(trailer + 4) != (uint32_t)(s->out_size - start)) {
        stop(s, "length mismatch (corrupt data)");
    }
    s->in_pos += 8;
}

/* Every member in turn (concatenated gzip files are one valid stream); zero
 * padding after the last member is allowed, other trailing bytes are not. */
static void inflate_members(struct inflater *s)
{
    do {
        size_t start = s->out_size;
        skip_gzip_header(s);
        s->bit_buffer = 0;
        s->bit_count = 0;
        inflate_blocks(s);
        s->bit_buffer = 0;  /* the member's last byte is padded to a byte boundary */
        s->bit_count = 0;
        check_gzip_trailer(s, start);
        while (s->in_pos < s->in_size && s->in[s->in_pos] == 0) {
            s->in_pos++;
        }
    } while (s->in_pos < s->in_size);
}

/* The state lives on the heap: locals of the function that calls setjmp are
 * indeterminate after longjmp if they changed in between. */
static uint8_t *run(const uint8_t *data, size_t size, size_t max_out, size_t head, size_t *out_size,
                    const char **error)
{
    struct inflater *s = calloc(1, sizeof *s);
    if (s == NULL) {
        *error = "out of memory";
        return NULL;
    }
    s->in = data;
    s->in_size = size;
    s->max_out = max_out;
    s->head = head;
    uint8_t *out = NULL;
    int jumped = setjmp(s->on_error);
    if (jumped == 0) {
        inflate_members(s);
    }
    if (jumped == FAILED) {
        free(s->out);
        *error = s->error;
    } else {
        out = s->out ? s->out : malloc(1);
        *out_size = head && s->out_size > head ? head : s->out_size;
    }
    free(s);
    return out;
}

uint8_t *gunzip(const uint8_t *data, size_t size, size_t max_out, size_t *out_size, const char **error)
{
    return run(data, size, max_out, 0, out_size, error);
}

uint8_t *gunzip_head(const uint8_t *data, size_t size, size_t head, size_t *out_size, const char **error)
{
    return run(data, size, SIZE_MAX, head, out_size, error);
}

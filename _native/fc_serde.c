#include "fc_serde.h"

#include <stdlib.h>

int fc_buf_init(fc_buf *b, size_t cap) {
    b->len = 0;
    b->cap = cap ? cap : 64;
    b->data = (uint8_t *)malloc(b->cap);
    if (!b->data) {
        b->cap = 0;
        return -1;
    }
    return 0;
}

void fc_buf_free(fc_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int fc_buf_grow(fc_buf *b, size_t extra) {
    if (extra > SIZE_MAX / 2 - b->len) return -1;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    uint8_t *data = (uint8_t *)realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

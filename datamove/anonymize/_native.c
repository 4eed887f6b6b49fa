/*
 * HMAC-SHA256 of every value of an Arrow string or binary array, in C.
 *
 * The pure-Python path in actions.py (KeyedHasher) makes six calls per
 * value; this loop makes none, and takes the value bytes straight from the
 * array's offsets and data buffers. SHA-256 itself is OpenSSL's (the library
 * CPython's hashlib already uses), so the compression function is the
 * vetted, CPU-accelerated one (SHA extensions where the CPU has them).
 *
 * The inner and outer key pads are hashed once per call; each value then
 * costs one copy of each prepared state, as RFC 2104 allows. The GIL is
 * released while hashing. Key material (pads, states, inner digests) is
 * wiped before returning; no message names the key.
 *
 * The module is optional: setup.py builds it when a compiler and OpenSSL's
 * headers are present, and actions.py falls back to hashlib without it.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 64
#define DIGEST 32

/* The offset of value i, from 32-bit or 64-bit Arrow offsets. */
static inline int64_t
offset_at(const void *offsets, int wide, Py_ssize_t i)
{
    if (wide) {
        return ((const int64_t *)offsets)[i];
    }
    return ((const int32_t *)offsets)[i];
}

PyDoc_STRVAR(hmac_sha256_doc,
"hmac_sha256(key, offsets, data, start, count, wide) -> bytes\n\n"
"The HMAC-SHA256 under key (at most 64 bytes) of values start to\n"
"start + count - 1 of an Arrow string or binary array, given its offsets\n"
"buffer (int64 when wide, else int32) and data buffer: count * 32 bytes,\n"
"one digest after another. Raises ValueError on offsets that do not\n"
"describe ranges of data.");

static PyObject *
hmac_sha256(PyObject *module, PyObject *args)
{
    Py_buffer key, offsets, data;
    Py_ssize_t start, count;
    int wide;
    if (!PyArg_ParseTuple(args, "y*y*y*nnp", &key, &offsets, &data, &start,
                          &count, &wide)) {
        return NULL;
    }
    PyObject *result = NULL;
    const Py_ssize_t width = wide ? 8 : 4;
    if (key.len > BLOCK) {
        PyErr_SetString(PyExc_ValueError, "the key is longer than one block");
        goto done;
    }
    if (start < 0 || count < 0 || count > PY_SSIZE_T_MAX / DIGEST - 1 ||
        (start + count + 1) > offsets.len / width) {
        PyErr_SetString(PyExc_ValueError,
                        "the offsets buffer is too short for the values");
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, count * DIGEST);
    if (result == NULL) {
        goto done;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    const unsigned char *bytes = (const unsigned char *)data.buf;
    const int64_t size = (int64_t)data.len;
    Py_ssize_t bad = -1;

    unsigned char pad[BLOCK];
    unsigned char inner_digest[DIGEST];
    SHA256_CTX inner_start, outer_start, state;

    Py_BEGIN_ALLOW_THREADS
    memset(pad, 0, BLOCK);
    memcpy(pad, key.buf, (size_t)key.len);
    for (int i = 0; i < BLOCK; i++) {
        pad[i] ^= 0x36;
    }
    SHA256_Init(&inner_start);
    SHA256_Update(&inner_start, pad, BLOCK);
    for (int i = 0; i < BLOCK; i++) {
        pad[i] ^= 0x36 ^ 0x5c;
    }
    SHA256_Init(&outer_start);
    SHA256_Update(&outer_start, pad, BLOCK);

    int64_t low = offset_at(offsets.buf, wide, start);
    for (Py_ssize_t i = 0; i < count; i++) {
        const int64_t high = offset_at(offsets.buf, wide, start + i + 1);
        if (low < 0 || high < low || high > size) {
            bad = start + i;
            break;
        }
        state = inner_start;
        SHA256_Update(&state, bytes + low, (size_t)(high - low));
        SHA256_Final(inner_digest, &state);
        state = outer_start;
        SHA256_Update(&state, inner_digest, DIGEST);
        SHA256_Final(out + i * DIGEST, &state);
        low = high;
    }
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(inner_digest, sizeof(inner_digest));
    OPENSSL_cleanse(&inner_start, sizeof(inner_start));
    OPENSSL_cleanse(&outer_start, sizeof(outer_start));
    OPENSSL_cleanse(&state, sizeof(state));
    Py_END_ALLOW_THREADS

    if (bad >= 0) {
        Py_CLEAR(result);
        PyErr_Format(PyExc_ValueError,
                     "offsets of value %zd do not describe a range of the data",
                     bad);
    }
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef native_methods[] = {
    {"hmac_sha256", hmac_sha256, METH_VARARGS, hmac_sha256_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    "datamove.anonymize._native",
    "HMAC-SHA256 over Arrow buffers (optional accelerator of actions.py).",
    -1,
    native_methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModule_Create(&native_module);
}

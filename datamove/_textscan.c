/*
 * Byte counts over a buffer, for finding where a large CSV file can be cut.
 *
 * The planner cuts a large text file into pieces at line starts outside
 * quoted fields. Knowing whether an offset is inside quotes takes the parity
 * of all quote characters before it, so the planner reads the file up to its
 * last cut and counts quotes and newlines: on a file of gigabytes that is
 * the whole fixed cost of planning. bytes.count does it one character at a
 * time, twice; this loop counts both characters in one pass that the
 * compiler vectorises, with the GIL released, so files are scanned in
 * parallel at memory speed.
 *
 * The module is optional: setup.py builds it when a compiler is present, and
 * planner.py counts with bytes.count without it, with the same results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* Blocks short enough that the per-block counters cannot overflow. */
#define STRIDE 4096

PyDoc_STRVAR(count2_doc,
"count2(buffer, first, second, start, end) -> (int, int)\n\n"
"How many bytes of buffer[start:end] equal first, and how many equal\n"
"second (both byte values 0 to 255). start and end are clamped to the\n"
"buffer as slicing would.");

static PyObject *
count2(PyObject *module, PyObject *args)
{
    Py_buffer view;
    int first, second;
    Py_ssize_t start, end;
    if (!PyArg_ParseTuple(args, "y*iinn", &view, &first, &second, &start,
                          &end)) {
        return NULL;
    }
    if (first < 0 || first > 255 || second < 0 || second > 255) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "byte values must be 0 to 255");
        return NULL;
    }
    if (start < 0) {
        start = 0;
    }
    if (end > view.len) {
        end = view.len;
    }
    unsigned long long ones = 0, twos = 0;
    if (end > start) {
        const unsigned char *data = (const unsigned char *)view.buf + start;
        const Py_ssize_t length = end - start;
        const unsigned char a = (unsigned char)first;
        const unsigned char b = (unsigned char)second;
        Py_BEGIN_ALLOW_THREADS
        Py_ssize_t at = 0;
        while (at < length) {
            Py_ssize_t stop = length - at < STRIDE ? length : at + STRIDE;
            uint32_t block_a = 0, block_b = 0;
            for (Py_ssize_t i = at; i < stop; i++) {
                block_a += data[i] == a;
                block_b += data[i] == b;
            }
            ones += block_a;
            twos += block_b;
            at = stop;
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("KK", ones, twos);
}

static PyMethodDef textscan_methods[] = {
    {"count2", count2, METH_VARARGS, count2_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef textscan_module = {
    PyModuleDef_HEAD_INIT,
    "datamove._textscan",
    "Byte counts for cutting large CSV files (optional accelerator).",
    -1,
    textscan_methods,
};

PyMODINIT_FUNC
PyInit__textscan(void)
{
    return PyModule_Create(&textscan_module);
}

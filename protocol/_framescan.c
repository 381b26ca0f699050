/* The reader's per-message fast path in C (warren.protocol._framescan).
 *
 * scan(data, pos, max_payload, out) -> pos
 *
 * Appends to `out` the tuples FrameReader.feed (protocol/reader.py) makes for the
 * frames of a publishing or consuming client's steady state -- a Basic.Publish whose
 * content header and single body frame are complete in `data` (K_MESSAGE) and a
 * Basic.Ack (K_ACK) -- exactly as the Python code makes them, from `pos` on, and
 * returns the position of the first frame it leaves alone. It never raises on client
 * bytes: anything else (another frame, a frame not complete yet, a size or end-marker
 * error, bad UTF-8) stops the scan there and the Python reader takes that frame, with
 * its checks and RabbitMQ's error texts. tests/protocol/test_framescan.py holds the two
 * to the same output.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define FRAME_METHOD 1
#define FRAME_HEADER 2
#define FRAME_BODY 3
#define FRAME_END 0xCE
#define K_ACK 11
#define K_MESSAGE 14
#define PUBLISH_ID ((60u << 16) | 40u)
#define ACK_ID ((60u << 16) | 80u)

static PyObject *k_ack, *k_message;

static inline uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t be64(const unsigned char *p) {
    return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

static inline unsigned be16(const unsigned char *p) { return ((unsigned)p[0] << 8) | p[1]; }

/* a shortstr's text, or NULL without an exception set when it is not UTF-8 */
static PyObject *text(const unsigned char *p, Py_ssize_t n) {
    PyObject *s = PyUnicode_DecodeUTF8((const char *)p, n, NULL);
    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) PyErr_Clear();
    return s;
}

static PyObject *scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_CheckExact(args[0]) || !PyList_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "scan(data: bytes, pos: int, max_payload: int, out: list)");
        return NULL;
    }
    PyObject *data = args[0], *out = args[3];
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) return NULL;
    unsigned long long max_payload = PyLong_AsUnsignedLongLong(args[2]);
    if (max_payload == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (pos < 0) pos = n;

    while (n - pos >= 8) {
        if (d[pos] != FRAME_METHOD) break;
        unsigned ch = be16(d + pos + 1);
        uint32_t size = be32(d + pos + 3);
        if (size > max_payload) break;
        Py_ssize_t end = pos + 7 + (Py_ssize_t)size;
        if (end >= n || d[end] != FRAME_END || size < 4) break;
        Py_ssize_t start = pos + 7;
        uint32_t mid = be32(d + start);
        if (mid == ACK_ID) {
            if (size != 13) break;
            uint64_t tag = be64(d + start + 4);
            unsigned bits = d[start + 12];
            PyObject *t = PyTuple_New(4);
            if (t == NULL) return NULL;
            Py_INCREF(k_ack);
            PyTuple_SET_ITEM(t, 0, k_ack);
            PyTuple_SET_ITEM(t, 1, PyLong_FromUnsignedLong(ch));
            PyTuple_SET_ITEM(t, 2, PyLong_FromUnsignedLongLong(tag));
            PyTuple_SET_ITEM(t, 3, PyLong_FromUnsignedLong(bits & 1));
            if (PyErr_Occurred() || PyList_Append(out, t) < 0) {
                Py_DECREF(t);
                return NULL;
            }
            Py_DECREF(t);
            pos = end + 1;
            continue;
        }
        if (mid != PUBLISH_ID || size < 9) break;
        /* ticket(2) exchange(shortstr) routing_key(shortstr) bits(1) */
        Py_ssize_t p = start + 6;
        Py_ssize_t ex_end = p + 1 + d[p];
        if (ex_end >= end) break;
        Py_ssize_t rk_end = ex_end + 1 + d[ex_end];
        if (rk_end + 1 != end) break;
        unsigned bits = d[rk_end];
        /* the content header, then one body frame, complete in this buffer */
        Py_ssize_t hp = end + 1;
        if (n - hp < 21 || d[hp] != FRAME_HEADER || be16(d + hp + 1) != ch) break;
        uint32_t hsize = be32(d + hp + 3);
        Py_ssize_t hend = hp + 7 + (Py_ssize_t)hsize;
        if (hsize < 14 || hsize > max_payload || hend >= n || d[hend] != FRAME_END) break;
        if (be16(d + hp + 7) != 60) break;
        uint64_t body_size = be64(d + hp + 11);
        Py_ssize_t bp = hend + 1, bend = bp, nxt;
        if (body_size == 0) {
            nxt = hend + 1;
        } else {
            if (body_size > max_payload) break;
            bend = bp + 7 + (Py_ssize_t)body_size;
            if (bend >= n || d[bp] != FRAME_BODY || be16(d + bp + 1) != ch ||
                be32(d + bp + 3) != body_size || d[bend] != FRAME_END)
                break;
            nxt = bend + 1;
        }
        PyObject *exchange = text(d + p + 1, ex_end - p - 1);
        if (exchange == NULL) {
            if (PyErr_Occurred()) return NULL;
            break;
        }
        PyObject *routing_key = text(d + ex_end + 1, rk_end - ex_end - 1);
        if (routing_key == NULL) {
            Py_DECREF(exchange);
            if (PyErr_Occurred()) return NULL;
            break;
        }
        PyObject *t = PyTuple_New(9);
        if (t == NULL) {
            Py_DECREF(exchange);
            Py_DECREF(routing_key);
            return NULL;
        }
        Py_INCREF(k_message);
        PyTuple_SET_ITEM(t, 0, k_message);
        PyTuple_SET_ITEM(t, 1, PyLong_FromUnsignedLong(ch));
        PyTuple_SET_ITEM(t, 2, exchange);
        PyTuple_SET_ITEM(t, 3, routing_key);
        PyTuple_SET_ITEM(t, 4, PyLong_FromUnsignedLong(bits & 1));
        PyTuple_SET_ITEM(t, 5, PyLong_FromUnsignedLong(bits & 2));
        PyTuple_SET_ITEM(t, 6, PyBytes_FromStringAndSize((const char *)d + p, rk_end - p));
        PyTuple_SET_ITEM(t, 7, PyBytes_FromStringAndSize((const char *)d + hp + 7, hend - hp - 7));
        if (body_size == 0) {
            PyTuple_SET_ITEM(t, 8, PyBytes_FromStringAndSize(NULL, 0));
        } else {
            PyTuple_SET_ITEM(t, 8, PyBytes_FromStringAndSize((const char *)d + bp + 7, bend - bp - 7));
        }
        if (PyErr_Occurred() || PyList_Append(out, t) < 0) {
            Py_DECREF(t);
            return NULL;
        }
        Py_DECREF(t);
        pos = nxt;
    }
    return PyLong_FromSsize_t(pos);
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(data, pos, max_payload, out) -> pos: the fast-path frames from pos on, appended to out"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_framescan", "The frame reader's per-message fast path in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__framescan(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    k_ack = PyLong_FromLong(K_ACK);
    k_message = PyLong_FromLong(K_MESSAGE);
    if (k_ack == NULL || k_message == NULL || PyModule_AddIntConstant(m, "K_ACK", K_ACK) < 0 ||
        PyModule_AddIntConstant(m, "K_MESSAGE", K_MESSAGE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

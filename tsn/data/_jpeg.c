/*
 * tsn.data._jpeg: decode only the crop box of a JPEG frame, with libjpeg-turbo.
 *
 * Why: a TSN training sample decodes K frames but keeps one crop box of each (168..256 px of
 * a 340x256 frame, spec 2.3), and JPEG decoding is two thirds of a sample. libjpeg-turbo can
 * skip the rows above the box (jpeg_skip_scanlines), stop after its last row, and run IDCT,
 * upsampling and colour conversion only on the iMCU columns around it (jpeg_crop_scanline).
 *
 * Pixels: the same as decoding the whole frame with cv2.imdecode and slicing the box. Both
 * run libjpeg's accurate integer IDCT (JDCT_ISLOW) with fancy upsampling and convert straight
 * to BGR / grayscale. Fancy upsampling reads one chroma sample beyond each edge of the region
 * it decodes, so the region is widened by a margin of two chroma samples on every side: the
 * box's pixels then never see a region edge (tests/test_data_jpeg.py checks bit identity over
 * all 13 x scale-pair boxes, random boxes, 4:2:0 / 4:2:2 / 4:4:4, odd sizes, progressive).
 *
 * A libjpeg warning (corrupt entropy data, extraneous bytes, premature end) is an error here,
 * not a silently wrong image. Damaged entropy data often decodes without complaint until the
 * decoder reaches the end marker misaligned, so only a decode that reaches the last row (a
 * whole frame, or a box touching the bottom) can see every such warning; a box higher up sees
 * those inside its rows (truncation is caught before decoding, tsn/data/frames.py).
 *
 * decode(data, gray, x, y, w, h) -> (bytearray, width, height, channels)
 *   w or h <= 0 decodes the whole image. Raises JPEGError (a ValueError) with libjpeg's
 *   message, or UnsupportedJPEG for colour spaces it leaves to OpenCV (CMYK, YCCK).
 * size(data) -> (width, height, components)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

static PyObject *JPEGError;
static PyObject *UnsupportedJPEG;

enum { OK = 0, LIBJPEG_ERROR = 1, CORRUPT_DATA = 2, UNSUPPORTED = 3, NO_MEMORY = 4 };

struct error_manager {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo) {
  struct error_manager *err = (struct error_manager *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

/* libjpeg reports recoverable damage as warnings (level -1): keep the first message. */
static void on_message(j_common_ptr cinfo, int level) {
  struct error_manager *err = (struct error_manager *)cinfo->err;
  if (level < 0) {
    if (err->pub.num_warnings == 0) (*cinfo->err->format_message)(cinfo, err->message);
    err->pub.num_warnings++;
  }
}

struct request {
  const unsigned char *data;
  unsigned long size;
  int gray, x, y, w, h;
};

/* Decode rows [y, y+h) x columns [x, x+w) into out (h * w * channels bytes, rows packed). */
static int decode_box(struct jpeg_decompress_struct *cinfo, struct error_manager *err,
                      const struct request *req, unsigned char *out) {
  /* volatile: assigned after setjmp and freed on the longjmp path */
  unsigned char *volatile region = NULL;
  JSAMPROW *volatile rows = NULL;
  if (setjmp(err->jump)) {
    free((void *)region);
    free((void *)rows);
    return LIBJPEG_ERROR;
  }
  jpeg_start_decompress(cinfo);
  const int channels = cinfo->output_components;
  /* two chroma samples of context on each side (fancy upsampling reads one) */
  const int margin_x = 2 * cinfo->max_h_samp_factor, margin_y = 2 * cinfo->max_v_samp_factor;
  const int width = (int)cinfo->output_width;
  int x0 = req->x - margin_x, x1 = req->x + req->w + margin_x;
  if (x0 < 0) x0 = 0;
  if (x1 > width) x1 = width;
  JDIMENSION region_x = (JDIMENSION)x0, region_w = (JDIMENSION)(x1 - x0);
  if ((int)region_w < width) jpeg_crop_scanline(cinfo, &region_x, &region_w);  /* iMCU-aligned */
  int y0 = req->y - margin_y;
  if (y0 > 0) jpeg_skip_scanlines(cinfo, (JDIMENSION)y0);
  const int first = (int)cinfo->output_scanline, count = req->y + req->h - first;
  const size_t stride = (size_t)cinfo->output_width * channels;
  region = malloc(stride * count);
  rows = malloc(sizeof(JSAMPROW) * count);
  if (!region || !rows) {
    free((void *)region);
    free((void *)rows);
    return NO_MEMORY;
  }
  for (int i = 0; i < count; i++) rows[i] = region + stride * i;
  /* many rows per call: h2v2 upsampling then writes row pairs straight into the buffer */
  while ((int)cinfo->output_scanline < first + count) {
    const int done = (int)cinfo->output_scanline - first;
    jpeg_read_scanlines(cinfo, rows + done, (JDIMENSION)(count - done));
  }
  const size_t skip = (size_t)(req->x - (int)region_x) * channels, line = (size_t)req->w * channels;
  for (int r = 0; r < req->h; r++)
    memcpy(out + line * r, region + stride * (req->y - first + r) + skip, line);
  free((void *)region);
  free((void *)rows);
  if (cinfo->output_scanline == cinfo->output_height)
    jpeg_finish_decompress(cinfo); /* reads up to EOI: misaligned (damaged) data warns here */
  else
    jpeg_abort_decompress(cinfo); /* rows below the box are never decoded */
  return err->pub.num_warnings ? CORRUPT_DATA : OK;
}

static PyObject *raise(int code, const char *message) {
  if (code == NO_MEMORY) return PyErr_NoMemory();
  PyErr_SetString(code == UNSUPPORTED ? UnsupportedJPEG : JPEGError, message);
  return NULL;
}

static void init_decompress(struct jpeg_decompress_struct *cinfo, struct error_manager *err) {
  cinfo->err = jpeg_std_error(&err->pub);
  err->pub.error_exit = on_error;
  err->pub.emit_message = on_message;
  err->message[0] = '\0';
  jpeg_create_decompress(cinfo);
}

static PyObject *py_decode(PyObject *self, PyObject *args) {
  Py_buffer data;
  struct request req;
  if (!PyArg_ParseTuple(args, "y*piiii", &data, &req.gray, &req.x, &req.y, &req.w, &req.h))
    return NULL;
  req.data = data.buf;
  req.size = (unsigned long)data.len;
  struct jpeg_decompress_struct cinfo;
  struct error_manager err;
  PyObject *result = NULL, *volatile buffer = NULL;
  init_decompress(&cinfo, &err);
  if (setjmp(err.jump)) {
    raise(LIBJPEG_ERROR, err.message);
    goto done;
  }
  jpeg_mem_src(&cinfo, req.data, req.size);
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space != JCS_GRAYSCALE && cinfo.jpeg_color_space != JCS_YCbCr &&
      cinfo.jpeg_color_space != JCS_RGB) {
    raise(UNSUPPORTED, "colour space other than grayscale, YCbCr or RGB");
    goto done;
  }
  cinfo.out_color_space = req.gray ? JCS_GRAYSCALE : JCS_EXT_BGR;
  cinfo.dct_method = JDCT_ISLOW;
  cinfo.do_fancy_upsampling = TRUE;
  const int width = (int)cinfo.image_width, height = (int)cinfo.image_height;
  if (req.w <= 0 || req.h <= 0) {
    req.x = req.y = 0;
    req.w = width;
    req.h = height;
  }
  if (req.x < 0 || req.y < 0 || req.x + req.w > width || req.y + req.h > height) {
    char message[160];
    snprintf(message, sizeof message, "crop box %dx%d at (%d, %d) outside the %dx%d image",
             req.w, req.h, req.x, req.y, width, height);
    raise(LIBJPEG_ERROR, message);
    goto done;
  }
  const int channels = req.gray ? 1 : 3;
  buffer = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)req.w * req.h * channels);
  if (!buffer) goto done;
  unsigned char *out = (unsigned char *)PyByteArray_AS_STRING(buffer);
  int code;
  Py_BEGIN_ALLOW_THREADS
  code = decode_box(&cinfo, &err, &req, out);
  Py_END_ALLOW_THREADS
  if (code != OK) {
    raise(code, err.message);
    goto done;
  }
  result = Py_BuildValue("Oiii", buffer, width, height, channels);
done:
  Py_XDECREF(buffer);
  jpeg_destroy_decompress(&cinfo);
  PyBuffer_Release(&data);
  return result;
}

static PyObject *py_size(PyObject *self, PyObject *args) {
  Py_buffer data;
  if (!PyArg_ParseTuple(args, "y*", &data)) return NULL;
  struct jpeg_decompress_struct cinfo;
  struct error_manager err;
  PyObject *result = NULL;
  init_decompress(&cinfo, &err);
  if (setjmp(err.jump)) {
    raise(LIBJPEG_ERROR, err.message);
  } else {
    jpeg_mem_src(&cinfo, data.buf, (unsigned long)data.len);
    jpeg_read_header(&cinfo, TRUE);
    result = Py_BuildValue("iii", (int)cinfo.image_width, (int)cinfo.image_height,
                           cinfo.num_components);
  }
  jpeg_destroy_decompress(&cinfo);
  PyBuffer_Release(&data);
  return result;
}

static PyMethodDef methods[] = {
    {"decode", py_decode, METH_VARARGS,
     "decode(data, gray, x, y, w, h) -> (bytearray, width, height, channels): the box's pixels"},
    {"size", py_size, METH_VARARGS, "size(data) -> (width, height, components)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jpeg",
                                    "libjpeg-turbo crop-box JPEG decoder", -1, methods};

PyMODINIT_FUNC PyInit__jpeg(void) {
  PyObject *m = PyModule_Create(&module);
  if (!m) return NULL;
  JPEGError = PyErr_NewException("tsn.data._jpeg.JPEGError", PyExc_ValueError, NULL);
  UnsupportedJPEG = PyErr_NewException("tsn.data._jpeg.UnsupportedJPEG", JPEGError, NULL);
  if (PyModule_AddObjectRef(m, "JPEGError", JPEGError) < 0 ||
      PyModule_AddObjectRef(m, "UnsupportedJPEG", UnsupportedJPEG) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  PyModule_AddIntConstant(m, "LIBJPEG_TURBO_VERSION_NUMBER",
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
                          LIBJPEG_TURBO_VERSION_NUMBER
#else
                          0
#endif
  );
  return m;
}

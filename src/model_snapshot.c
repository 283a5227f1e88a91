// The serialized form of a model or layer. Each R model or layer object keeps, beside its
// engine handle, an ALTREP raw vector of this class that holds the handle and nothing else,
// until R serializes it (saveRDS(), save(), save.image(), serialize() to a PSOCK worker).
// Then its state is written by rustkeras:::rk_snapshot_state(): a model's .keras bytes, a
// layer's config, build shapes and weights; nothing is computed or kept while nobody
// serializes. Read back, it is that state, from which the object comes back on first use
// (R/model-serialization.R).

#include <Rinternals.h>
#include <R_ext/Altrep.h>
#include <R_ext/Rdynload.h>

static R_altrep_class_t snapshot_class;

// An empty vector to whoever looks inside: the bytes exist only in serialized form.
static R_xlen_t snapshot_length(SEXP x) {
    (void) x;
    return 0;
}

static void *snapshot_dataptr(SEXP x, Rboolean writable) {
    (void) x;
    (void) writable;
    static Rbyte none;
    return &none;
}

static const void *snapshot_dataptr_or_null(SEXP x) {
    return snapshot_dataptr(x, FALSE);
}

static SEXP snapshot_serialized_state(SEXP x) {
    SEXP ns = PROTECT(R_FindNamespace(PROTECT(mkString("rustkeras"))));
    SEXP call = PROTECT(lang2(install("rk_snapshot_state"), R_altrep_data1(x)));
    SEXP bytes = eval(call, ns);
    UNPROTECT(3);
    return bytes;
}

// The state (bytes, a layer's list, or a message saying why there is none) is the value
// read back.
static SEXP snapshot_unserialize(SEXP cls, SEXP state) {
    (void) cls;
    return state;
}

static SEXP snapshot_duplicate(SEXP x, Rboolean deep) {
    (void) deep;
    return R_new_altrep(snapshot_class, R_altrep_data1(x), R_altrep_data2(x));
}

static Rboolean snapshot_inspect(SEXP x, int pre, int deep, int pvec,
                                 void (*inspect_subtree)(SEXP, int, int, int)) {
    (void) x; (void) pre; (void) deep; (void) pvec; (void) inspect_subtree;
    Rprintf(" rustkeras snapshot (written when serialized)\n");
    return TRUE;
}

void rk_register_snapshot_class(DllInfo *dll) {
    snapshot_class = R_make_altraw_class("rk_snapshot", "rustkeras", dll);
    R_set_altrep_Length_method(snapshot_class, snapshot_length);
    R_set_altrep_Serialized_state_method(snapshot_class, snapshot_serialized_state);
    R_set_altrep_Unserialize_method(snapshot_class, snapshot_unserialize);
    R_set_altrep_Duplicate_method(snapshot_class, snapshot_duplicate);
    R_set_altrep_Inspect_method(snapshot_class, snapshot_inspect);
    R_set_altvec_Dataptr_method(snapshot_class, snapshot_dataptr);
    R_set_altvec_Dataptr_or_null_method(snapshot_class, snapshot_dataptr_or_null);
}

// A snapshot of the model or layer behind `handle` (an external pointer), carrying
// `payload`: R objects that go with the live object but not into its serialized form (a
// functional model's symbolic graph, whose layer objects would otherwise serialize their
// weights a second time).
SEXP rk_snapshot_new(SEXP handle, SEXP payload) {
    return R_new_altrep(snapshot_class, handle, payload);
}

// The payload of a live snapshot; NULL for anything else (a snapshot read back is a
// plain vector).
SEXP rk_snapshot_payload(SEXP x) {
    if (ALTREP(x) && R_altrep_inherits(x, snapshot_class)) return R_altrep_data2(x);
    return R_NilValue;
}

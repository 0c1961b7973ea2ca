//! The CPU backend's matrix product: ndarray's `a.dot(&b)`, computed by the `gemm` crate's
//! cache-blocked SIMD kernels (on every core through rayon for large products). ndarray's own
//! `dot` (matrixmultiply) reaches about two thirds of NumPy's OpenBLAS on the seeds' step;
//! `gemm` matches it, in pure Rust, so a fresh machine needs no BLAS installed (BENCHMARKS.md
//! has the figures).

use ndarray::{Array2, ArrayView2};

use crate::float::Float;

/// Products below this many multiply-adds go through ndarray's `dot`, whose set-up costs less
/// than gemm's packing and dispatch for small batches such as the bike data's 32 x 61 x 25.
const SMALL_PRODUCT: usize = 1 << 18;

/// Products below this many multiply-adds run gemm on the calling thread: waking the other
/// cores for a few milliseconds of work costs more than it saves (measured on digits' 200 x 64
/// x 100 steps, where the pool spent a fifth of the run yielding).
const PARALLEL_PRODUCT: usize = 1 << 23;

/// `a · b` for any memory layout of either view (transposed views included).
///
/// # Panics
/// When `a.ncols() != b.nrows()`, as `dot` does; the backends check every shape first.
pub fn matmul<T: Float>(a: ArrayView2<T>, b: ArrayView2<T>) -> Array2<T> {
    scaled_matmul(T::one(), a, b)
}

/// `scale · (a · b)`, the scaling folded into the product's final write.
pub fn scaled_matmul<T: Float>(scale: T, a: ArrayView2<T>, b: ArrayView2<T>) -> Array2<T> {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert_eq!(k, k2, "matmul of {:?} and {:?}", a.dim(), b.dim());
    if m == 0 || n == 0 || k == 0 {
        return Array2::zeros((m, n));
    }
    if m * n * k < SMALL_PRODUCT {
        return a.dot(&b) * scale;
    }
    let mut out = Array2::<T>::uninit((m, n));
    let (a_strides, b_strides) = (a.strides(), b.strides());
    let out_cols = n as isize;
    // SAFETY: the pointers come from live views whose strides (in elements) address exactly
    // m x k and k x n elements; `out` is a fresh, contiguous, row-major m x n array that
    // nothing else borrows. With `read_dst = false` gemm writes every element of `out`
    // (`out = scale · a · b`, k >= 1) without reading it, so it is initialised afterwards.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr().cast::<T>(),
            1,
            out_cols,
            false,
            a.as_ptr(),
            a_strides[1],
            a_strides[0],
            b.as_ptr(),
            b_strides[1],
            b_strides[0],
            T::zero(),
            scale,
            false,
            false,
            false,
            if m * n * k < PARALLEL_PRODUCT {
                gemm::Parallelism::None
            } else {
                gemm::Parallelism::Rayon(0)
            },
        );
        out.assume_init()
    }
}

/// Arrays with fewer elements than this are mapped on the calling thread: handing a small
/// map to rayon costs more than computing it (the bike data's 32 x 25 activations).
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

/// `f(a, b)` element by element, on every core for large arrays.
pub fn zip_map<T: Float>(
    a: ArrayView2<T>,
    b: ArrayView2<T>,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Array2<T> {
    let zip = ndarray::Zip::from(a).and(b);
    if a.len() >= PARALLEL_MIN_ELEMENTS {
        zip.par_map_collect(|&x, &y| f(x, y))
    } else {
        zip.map_collect(|&x, &y| f(x, y))
    }
}

/// `a = f(a)` element by element, on every core for large arrays.
pub fn map_inplace<T: Float>(a: &mut Array2<T>, f: impl Fn(T) -> T + Sync + Send) {
    if a.len() >= PARALLEL_MIN_ELEMENTS {
        a.par_mapv_inplace(f);
    } else {
        a.mapv_inplace(f);
    }
}

/// `a += b` element by element, on every core for large arrays.
pub fn add_assign<T: Float>(a: &mut Array2<T>, b: ArrayView2<T>) {
    let zip = ndarray::Zip::from(a).and(b);
    if b.len() >= PARALLEL_MIN_ELEMENTS {
        zip.par_for_each(|x, &y| *x = *x + y);
    } else {
        zip.for_each(|x, &y| *x = *x + y);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::Array2;

    #[test]
    fn matches_dot_for_every_layout() {
        let a = Array2::from_shape_fn((37, 53), |(i, j)| ((i * 53 + j) as f64 * 0.37).sin());
        let b = Array2::from_shape_fn((53, 29), |(i, j)| ((i * 29 + j) as f64 * 0.11).cos());
        assert_abs_diff_eq!(matmul(a.view(), b.view()), a.dot(&b), epsilon = 1e-12);
        let at = a.t().to_owned();
        assert_abs_diff_eq!(matmul(at.t(), b.view()), a.dot(&b), epsilon = 1e-12);
        let bt = b.t().to_owned();
        assert_abs_diff_eq!(matmul(a.view(), bt.t()), a.dot(&b), epsilon = 1e-12);
        let a32 = a.mapv(|v| v as f32);
        let b32 = b.mapv(|v| v as f32);
        assert_abs_diff_eq!(
            matmul(a32.view(), b32.view()),
            a32.dot(&b32),
            epsilon = 1e-4
        );
        assert_eq!(
            matmul(
                Array2::<f64>::zeros((3, 0)).view(),
                Array2::zeros((0, 4)).view()
            ),
            Array2::<f64>::zeros((3, 4))
        );
    }

    #[test]
    #[should_panic(expected = "matmul of")]
    fn mismatched_shapes_panic_like_dot() {
        matmul(
            Array2::<f32>::zeros((2, 3)).view(),
            Array2::zeros((4, 5)).view(),
        );
    }
}

//! `bench_images DIR`: the images the files bench uploads, made here so that the bench needs no
//! outside tool: `photo.jpg` (4000x3000, 12 megapixels, quality 90) and `photo.webp`
//! (1200x1200), both a smooth photo-like picture with fine noise, so that they compress like
//! photographs rather than flat colour.

#![allow(clippy::unwrap_used)]

fn picture(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (f64::from(x) / f64::from(w), f64::from(y) / f64::from(h));
        // A hash of the position for grain.
        let mut n = x.wrapping_mul(0x9E37_79B1) ^ y.wrapping_mul(0x85EB_CA77);
        n ^= n >> 15;
        n = n.wrapping_mul(0x2C1B_3C6D);
        n ^= n >> 12;
        let grain = f64::from(n & 0x1f) - 16.0;
        let c = |v: f64| (v + grain).clamp(0.0, 255.0) as u8;
        image::Rgb([
            c(128.0 + 100.0 * (fx * 9.0 + fy * 2.0).sin()),
            c(128.0 + 90.0 * (fy * 7.0 - fx * 3.0).cos()),
            c(110.0 + 80.0 * ((fx + fy) * 5.0).sin()),
        ])
    })
}

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: bench_images DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let jpg = picture(4000, 3000);
    let mut out = std::fs::File::create(dir.join("photo.jpg")).unwrap();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&jpg)
        .unwrap();
    let webp = picture(1200, 1200);
    let out = std::fs::File::create(dir.join("photo.webp")).unwrap();
    image::codecs::webp::WebPEncoder::new_lossless(out)
        .encode(webp.as_raw(), 1200, 1200, image::ExtendedColorType::Rgb8)
        .unwrap();
}

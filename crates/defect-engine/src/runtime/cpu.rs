// SPDX-License-Identifier: MIT OR Apache-2.0
//! Which CPU this is, and whether ONNX Runtime's 8-bit kernels can saturate on it.
//!
//! ONNX Runtime's CPU provider (MLAS) multiplies quantised activations (u8) by quantised weights
//! (s8) with the best instruction the CPU has. AMX-INT8, AVX512-VNNI and AVX-VNNI sum the
//! products in 32 bits. Without them, on AVX2 (and AVX-512 without VNNI), the kernels use
//! `vpmaddubsw`, which adds two u8 x s8 products into a *saturating* 16-bit lane: with weights
//! that use the full int8 range (|w| up to 127) two products can reach 2 x 255 x 127 = 64,770 and
//! are clipped at 32,767, so the model computes something else. Weights of at most 7 bits
//! (|w| <= 64, ONNX Runtime's `reduce_range`) or u8 weights (widened to 16 bits first) cannot
//! saturate. [`CpuDescription::u8s8_kernel`] names the kernel MLAS picks, and
//! [`super::quant`] finds whether a model has weights that can saturate it.
//!
//! The flags can be forced with the [`CPU_FLAGS_ENV`] environment variable, to see what a
//! model would do on another CPU (tests use it).

/// Forces the CPU flags this process believes it has: a space- or comma-separated list in
/// /proc/cpuinfo spelling (`avx2 fma`, `avx2 avx512f avx512bw avx512_vnni`...); the CPU model
/// name becomes "(flags from GST_DEFECT_CPU_FLAGS)". For testing what `defectdetect` says on
/// another CPU; it does not change the kernels ONNX Runtime picks.
pub const CPU_FLAGS_ENV: &str = "GST_DEFECT_CPU_FLAGS";

/// The flags that decide MLAS's integer kernels, in /proc/cpuinfo spelling.
const RELEVANT_FLAGS: &[&str] = &[
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "amx_int8",
];

/// A CPU: its model name and the flags relevant to ONNX Runtime's integer kernels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuDescription {
    /// "Intel(R) Xeon(R) ...", from /proc/cpuinfo; "unknown CPU" where it cannot be read.
    pub model: String,
    /// x86-64 only: false elsewhere (ARM's kernels widen first and do not saturate).
    pub x86_64: bool,
    /// Lower case, /proc/cpuinfo spelling, sorted.
    pub flags: Vec<String>,
}

/// The u8 x s8 kernel ONNX Runtime's CPU provider takes on a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int8Kernel {
    /// The instruction set and instruction, e.g. "AVX2 (vpmaddubsw)".
    pub name: &'static str,
    /// Whether two products are summed into a saturating 16-bit lane.
    pub saturates: bool,
}

impl CpuDescription {
    /// This machine's CPU, or the flags [`CPU_FLAGS_ENV`] forces.
    pub fn detect() -> Self {
        if let Some(forced) = std::env::var(CPU_FLAGS_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            return Self::from_flags(
                &format!("(flags from {CPU_FLAGS_ENV})"),
                cfg!(target_arch = "x86_64"),
                forced.split([' ', ',']),
            );
        }
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo_field(&cpuinfo, "model name").unwrap_or("unknown CPU");
        Self::from_flags(
            model,
            cfg!(target_arch = "x86_64"),
            detected_flags(&cpuinfo),
        )
    }

    /// A CPU with these flags (any spelling case; irrelevant flags are dropped).
    pub fn from_flags<'a>(
        model: &str,
        x86_64: bool,
        flags: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut flags: Vec<String> = flags
            .into_iter()
            .map(|f| f.trim().to_ascii_lowercase())
            .filter(|f| RELEVANT_FLAGS.contains(&f.as_str()))
            .collect();
        flags.sort();
        flags.dedup();
        Self {
            model: model.trim().to_string(),
            x86_64,
            flags,
        }
    }

    pub fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The u8 x s8 GEMM kernel ONNX Runtime's MLAS selects (its platform.cpp order: AVX2, then
    /// AVX-VNNI, then AVX-512 core, then AVX512-VNNI, then AMX-INT8 when present).
    pub fn u8s8_kernel(&self) -> Int8Kernel {
        let kernel = |name, saturates| Int8Kernel { name, saturates };
        if !self.x86_64 {
            return kernel("not x86-64 (widening or dot-product kernels)", false);
        }
        let avx512_core = ["avx512f", "avx512bw", "avx512dq", "avx512vl"]
            .iter()
            .all(|f| self.has(f));
        if self.has("amx_int8") {
            kernel("AMX-INT8 (tdpbusd, 32-bit sums)", false)
        } else if avx512_core && self.has("avx512_vnni") {
            kernel("AVX512-VNNI (vpdpbusd, 32-bit sums)", false)
        } else if avx512_core {
            kernel(
                "AVX-512 without VNNI (vpmaddubsw, saturating 16-bit pair sums)",
                true,
            )
        } else if self.has("avx2") && self.has("avx_vnni") {
            kernel("AVX-VNNI (vpdpbusd, 32-bit sums)", false)
        } else if self.has("avx2") && self.has("fma") {
            kernel("AVX2 (vpmaddubsw, saturating 16-bit pair sums)", true)
        } else {
            kernel("SSE (16-bit widening, 32-bit sums)", false)
        }
    }

    /// "model name [flag flag ...]" for messages.
    pub fn summary(&self) -> String {
        let flags = if self.flags.is_empty() {
            "no AVX2, AVX-512 or VNNI".to_string()
        } else {
            self.flags.join(" ")
        };
        format!("{} [{flags}]", self.model)
    }
}

/// The first `key : value` of /proc/cpuinfo.
fn cpuinfo_field<'a>(cpuinfo: &'a str, key: &str) -> Option<&'a str> {
    cpuinfo.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The relevant flags of this CPU: what the running process can use (std's detection, which
/// also asks the OS whether it saves the AVX-512 state), and AMX from /proc/cpuinfo.
fn detected_flags(cpuinfo: &str) -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut flags = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($feature:tt => $name:literal),*) => {
                $(if std::arch::is_x86_feature_detected!($feature) { flags.push($name); })*
            };
        }
        probe!(
            "avx2" => "avx2",
            "fma" => "fma",
            "avx512f" => "avx512f",
            "avx512bw" => "avx512bw",
            "avx512dq" => "avx512dq",
            "avx512vl" => "avx512vl",
            "avx512vnni" => "avx512_vnni",
            "avxvnni" => "avx_vnni"
        );
        if cpuinfo_field(cpuinfo, "flags").is_some_and(|f| f.split(' ').any(|f| f == "amx_int8")) {
            flags.push("amx_int8");
        }
    }
    let _ = cpuinfo;
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(flags: &str) -> CpuDescription {
        CpuDescription::from_flags("test CPU", true, flags.split(' '))
    }

    #[test]
    fn avx2_only_saturates() {
        let k = cpu("avx avx2 fma sse4_2").u8s8_kernel();
        assert!(k.saturates, "{k:?}");
        assert!(k.name.starts_with("AVX2"), "{k:?}");
    }

    #[test]
    fn avx512_without_vnni_saturates() {
        assert!(
            cpu("avx2 fma avx512f avx512bw avx512dq avx512vl")
                .u8s8_kernel()
                .saturates
        );
    }

    #[test]
    fn vnni_and_amx_do_not_saturate() {
        for flags in [
            "avx2 fma avx512f avx512bw avx512dq avx512vl avx512_vnni",
            "avx2 fma avx_vnni",
            "avx2 fma avx512f avx512bw avx512dq avx512vl avx512_vnni amx_int8",
        ] {
            let k = cpu(flags).u8s8_kernel();
            assert!(!k.saturates, "{flags}: {k:?}");
        }
    }

    #[test]
    fn sse_only_and_other_architectures_do_not_saturate() {
        assert!(!cpu("sse4_2").u8s8_kernel().saturates);
        let arm = CpuDescription::from_flags("arm", false, ["avx2"]);
        assert!(!arm.u8s8_kernel().saturates);
    }

    #[test]
    fn flags_are_normalised_and_summarised() {
        let c = CpuDescription::from_flags(" AMD EPYC ", true, ["FMA", "avx2", "sse2", "avx2"]);
        assert_eq!(c.flags, ["avx2", "fma"]);
        assert_eq!(c.summary(), "AMD EPYC [avx2 fma]");
    }

    #[test]
    fn cpuinfo_is_read() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu avx2 amx_int8\n";
        assert_eq!(cpuinfo_field(text, "model name"), Some("AMD EPYC 7B13"));
        let detected = CpuDescription::detect();
        assert!(!detected.model.is_empty());
    }
}

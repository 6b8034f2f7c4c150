"""Shazeer 2020, "GLU Variants Improve Transformer" (arXiv 2002.05202): every number of the paper the report compares
with, in one place. Variant labels are ffnlab's (the paper's FFN_GLU is `glu`, FFN_Bilinear `bilinear`).

Tables 2-4 are fine-tuning scores on dev sets (0-100, as printed): each fully pre-trained model (524,288 steps) was
fine-tuned once on a mixture of SQuAD, GLUE and SuperGLUE, and each task's score is the best of any checkpoint of
that run (Section 3.3), so one run per variant and no seed spread. The Raffel et al. 2019 rows and their stddev rows
are not a variant and are left out. Transcribed from two independent text conversions of the paper, which agree.
"""

from __future__ import annotations

# Table 1: log-perplexity on C4 after 65,536 steps.
PAPER_LOG_PPL = {
    "relu": 1.997, "gelu": 1.983, "swish": 1.994, "glu": 1.982,
    "bilinear": 1.960, "reglu": 1.953, "geglu": 1.942, "swiglu": 1.944,
}

Column = tuple[str, str]  # (eval set, metric) as a fine-tune record names it; ("glue", "average") for an average

# Table 2: GLUE (Wang et al., 2018), dev. Columns as printed: Score Average, CoLA MCC, SST-2 Acc, MRPC F1, MRPC Acc,
# STSB PCC, STSB SCC, QQP F1, QQP Acc, MNLIm Acc, MNLImm Acc, QNLI Acc, RTE Acc.
GLUE_COLUMNS: tuple[Column, ...] = (
    ("glue", "average"), ("glue_cola", "mcc"), ("glue_sst2", "accuracy"), ("glue_mrpc", "f1"),
    ("glue_mrpc", "accuracy"), ("glue_stsb", "pearson"), ("glue_stsb", "spearman"), ("glue_qqp", "f1"),
    ("glue_qqp", "accuracy"), ("glue_mnli_matched", "accuracy"), ("glue_mnli_mismatched", "accuracy"),
    ("glue_qnli", "accuracy"), ("glue_rte", "accuracy"),
)
TABLE_2_GLUE = {
    "relu": (83.80, 51.32, 94.04, 93.08, 90.20, 89.64, 89.42, 89.01, 91.75, 85.83, 86.42, 92.81, 80.14),
    "gelu": (83.86, 53.48, 94.04, 92.81, 90.20, 89.69, 89.49, 88.63, 91.62, 85.89, 86.13, 92.39, 80.51),
    "swish": (83.60, 49.79, 93.69, 92.31, 89.46, 89.20, 88.98, 88.84, 91.67, 85.22, 85.02, 92.33, 81.23),
    "glu": (84.20, 49.16, 94.27, 92.39, 89.46, 89.46, 89.35, 88.79, 91.62, 86.36, 86.18, 92.92, 84.12),
    "geglu": (84.12, 53.65, 93.92, 92.68, 89.71, 90.26, 90.13, 89.11, 91.85, 86.15, 86.17, 92.81, 79.42),
    "bilinear": (83.79, 51.02, 94.38, 92.28, 89.46, 90.06, 89.84, 88.95, 91.69, 86.90, 87.08, 92.92, 81.95),
    "swiglu": (84.36, 51.59, 93.92, 92.23, 88.97, 90.32, 90.13, 89.14, 91.87, 86.45, 86.47, 92.93, 83.39),
    "reglu": (84.67, 56.16, 94.38, 92.06, 89.22, 89.97, 89.85, 88.86, 91.72, 86.20, 86.40, 92.68, 81.59),
}

# Table 3: SuperGLUE (Wang et al., 2019), dev. Columns as printed: Score Average, BoolQ Acc, CB F1, CB Acc, CoPA Acc,
# MultiRC F1, MultiRC EM, ReCoRD F1, ReCoRD EM, RTE Acc, WiC Acc, WSC Acc.
SUPER_GLUE_COLUMNS: tuple[Column, ...] = (
    ("super_glue", "average"), ("super_glue_boolq", "accuracy"), ("super_glue_cb", "f1"),
    ("super_glue_cb", "accuracy"), ("super_glue_copa", "accuracy"), ("super_glue_multirc", "f1"),
    ("super_glue_multirc", "em"), ("super_glue_record", "f1"), ("super_glue_record", "em"),
    ("super_glue_rte", "accuracy"), ("super_glue_wic", "accuracy"), ("super_glue_wsc", "accuracy"),
)
TABLE_3_SUPER_GLUE = {
    "relu": (72.76, 80.15, 83.37, 89.29, 70.00, 76.93, 39.14, 73.73, 72.91, 83.39, 67.71, 77.88),
    "gelu": (72.98, 80.64, 86.24, 91.07, 74.00, 75.93, 38.61, 72.96, 72.03, 81.59, 68.34, 75.96),
    "swish": (72.40, 80.43, 77.75, 83.93, 67.00, 76.34, 39.14, 73.34, 72.36, 81.95, 68.18, 81.73),
    "glu": (73.95, 80.95, 77.26, 83.93, 73.00, 76.07, 39.03, 74.22, 73.50, 84.12, 67.71, 87.50),
    "geglu": (73.96, 81.19, 82.09, 87.50, 72.00, 77.43, 41.03, 75.28, 74.60, 83.39, 67.08, 83.65),
    "bilinear": (73.81, 81.53, 82.49, 89.29, 76.00, 76.04, 40.92, 74.97, 74.10, 82.67, 69.28, 78.85),
    "swiglu": (74.56, 81.19, 82.39, 89.29, 73.00, 75.56, 38.72, 75.35, 74.55, 85.20, 67.24, 86.54),
    "reglu": (73.66, 80.89, 86.37, 91.07, 67.00, 75.32, 40.50, 75.07, 74.18, 84.48, 67.40, 79.81),
}

# Table 4: SQuAD v1.1 (Rajpurkar et al., 2016), dev. Columns as printed: EM, F1.
SQUAD_COLUMNS: tuple[Column, ...] = (("squad", "em"), ("squad", "f1"))
TABLE_4_SQUAD = {
    "relu": (83.18, 90.87), "gelu": (83.09, 90.79), "swish": (83.25, 90.76), "glu": (82.88, 90.69),
    "geglu": (83.55, 91.12), "bilinear": (83.82, 91.06), "swiglu": (83.42, 91.03), "reglu": (83.53, 91.18),
}

TABLES = ((GLUE_COLUMNS, TABLE_2_GLUE), (SUPER_GLUE_COLUMNS, TABLE_3_SUPER_GLUE), (SQUAD_COLUMNS, TABLE_4_SQUAD))

# (eval set, metric) -> variant -> the paper's score; shakespeare_speaker is ours, so the paper has no column for it.
PAPER_FINETUNE: dict[Column, dict[str, float]] = {
    column: {variant: row[i] for variant, row in table.items()}
    for columns, table in TABLES for i, column in enumerate(columns)
}

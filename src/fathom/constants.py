"""Competition constants and the Kaggle data layout: the one place that knows them."""

N_FINE = 290  # fine categories, ids 1..290 in category_key.csv
N_SUPER = 20  # super-categories ("supercat" column)
TOP_K = 20  # MAP@20: a submission row lists at most 20 ids

CATEGORY_KEY = "category_key.csv"
TRAIN_CSV = "multilabel_classification/train.csv"
TRAIN_JSON = "object_detection/train.json"
EVAL_JSON = "object_detection/eval.json"
SAMPLE_SUBMISSION = "sample_submission.csv"
SOLUTION_CSV = "solution.csv"  # only the demo data has one: the eval labels, in the scorer's format
IMAGES_DIR = "images"

SUBMISSION_COLUMNS = ["id", "categories", "osd"]
